"""Writes the compressed-audio fixtures: one second of a 440 Hz tone with a
quieter 3 kHz tone, 22.05 kHz mono, as 16-bit WAV (the reference) and as
FLAC, MP3, Ogg Vorbis (soundfile / libsndfile) and AAC in M4A (PyAV /
FFmpeg). Run from this directory: pip install soundfile av; python make.py
"""
import av
import numpy as np
import soundfile as sf

RATE = 22050
t = np.arange(RATE) / RATE
x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
x = (np.round(x * 32767) / 32768).astype(np.float32)

sf.write("tone.wav", x, RATE, subtype="PCM_16")
sf.write("tone.flac", x, RATE, subtype="PCM_16")
sf.write("tone.mp3", x, RATE, format="MP3")
sf.write("tone.ogg", x, RATE, format="OGG", subtype="VORBIS")

with av.open("tone.m4a", "w", format="mp4") as out:
    stream = out.add_stream("aac", rate=RATE, layout="mono")
    frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
    frame.sample_rate = RATE
    for packet in stream.encode(frame):
        out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
