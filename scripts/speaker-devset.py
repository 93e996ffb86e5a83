#!/usr/bin/env python3
"""A harder speaker-identification development set: 33 English voices.

    apt-get install flite espeak-ng festival festvox-kdlpc16k asterisk-core-sounds-en-wav
    pip install numpy scipy soundfile av
    python3 scripts/speaker-devset.py OUT_DIR [--seed 0] [--mild]

Writes OUT_DIR/raw/<speaker>/<session>/<n>.{wav,m4a}: 33 speakers, 2 to 8
sessions each, 38 utterances per speaker of 0.25 to 4 s (1,254 in all), in the
speaker-tree layout of seed 002.

The voices: one real recorded speaker (Allison Smith, the Asterisk English
prompts), five synthetic voices built from recordings of real speakers
(flite's kal16, awb, rms and slt from CMU ARCTIC; festival's ked diphones),
and 27 eSpeak NG formant voices (an accent and a voice variant each). Only
one is a human recording, so this measures how well a recipe separates many
voices in one language under channel noise, not how it does on real
speech; ../shared/devspeakers is the real-speech check.

What makes it hard: every session has its own channel (sample rate from
8 to 96 kHz, a band-pass, a gain, noise at 12 to 35 dB SNR), each utterance
its own speed and a small pitch offset, the texts differ between
utterances, and a third of the speakers have one session as AAC in M4A.
Deterministic for a seed.
"""

import argparse
import glob
import os
import random
import subprocess
import tempfile

import av
import numpy as np
import soundfile as sf
from scipy import signal

RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]
WORDS = """the a one two three four five six seven eight nine ten red green blue
yellow black white small large old new early late quick slow bright dark warm cold
house river garden window table morning evening station market letter paper
doctor teacher engine bottle mountain forest summer winter number voice music
answer question picture minute reason country water city office street""".split()
VERBS = """opened closed found carried painted watched cleaned moved followed
counted described ordered checked visited repaired remembered""".split()
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "adam", "david", "linda", "paul", "steph", "max", "edward", "john",
            "robert", "annie", "belinda", "victor", "zac", "shelby", "travis"]
PER_SPEAKER = 38
# Each (speaker, session)'s channel, drawn when the session is first used.
SESSION_CHANNELS = {}


def sentence(rng):
    n = rng.choice([1, 1, 2, 3, 4, 5, 6, 8, 10, 12])
    if n <= 2:
        return " ".join(rng.choice(WORDS) for _ in range(n))
    words = [rng.choice(WORDS) for _ in range(n - 1)]
    words.insert(rng.randrange(1, n), rng.choice(VERBS))
    return " ".join(words)


def read(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x.mean(axis=1), sr


def espeak(voice, text, speed, pitch, out):
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                    "-w", out, text], check=True)


def flite(voice, text, stretch, out):
    subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}",
                    "-t", text, "-o", out], check=True)


def festival(text, out):
    subprocess.run(["text2wave", "-eval", "(voice_ked_diphone)", "-o", out],
                   input=text.encode(), check=True)


def channel(rng, mild):
    rate = rng.choice(RATES)
    low = rng.uniform(50, 120) if mild else rng.uniform(60, 300)
    high = min(rng.uniform(5000, 9000) if mild else rng.uniform(3000, 9000), 0.45 * rate)
    snr = rng.uniform(25, 45) if mild else rng.uniform(12, 35)
    return dict(rate=rate, low=low, high=high, gain_db=rng.uniform(-24, -3),
                snr_db=snr, pink=rng.random() < 0.5)


def apply_channel(x, sr, ch, rng):
    rate = ch["rate"]
    g = np.gcd(sr, rate)
    y = signal.resample_poly(x, rate // g, sr // g).astype(np.float64)
    sos = signal.butter(2, [ch["low"], ch["high"]], btype="band", fs=rate, output="sos")
    y = signal.sosfilt(sos, y)
    peak = np.max(np.abs(y)) + 1e-9
    y = y / peak * 10 ** (ch["gain_db"] / 20)
    noise = np.random.default_rng(rng.randrange(2**32)).standard_normal(len(y))
    if ch["pink"]:
        noise = signal.lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                               [1, -2.494956002, 2.017265875, -0.522189400], noise)
    power = np.mean(y ** 2) + 1e-12
    noise *= np.sqrt(power / (np.mean(noise ** 2) + 1e-12) / 10 ** (ch["snr_db"] / 10))
    return np.clip(y + noise, -1, 1).astype(np.float32), rate


def trim(x, sr, rng):
    """Cut leading and trailing silence, then keep at most 4 s."""
    env = np.abs(x)
    on = np.nonzero(env > 0.02 * env.max())[0]
    if len(on):
        x = x[max(on[0] - int(0.05 * sr), 0): on[-1] + int(0.05 * sr)]
    most = int(rng.uniform(3.0, 4.0) * sr)
    return x[:most]


def write_m4a(path, x, sr):
    with av.open(path, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(x[None, :].astype(np.float32), format="flt",
                                           layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mild", action="store_true",
                    help="gentler channels: 25 to 45 dB SNR, a wider band-pass")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    prompts = sorted(glob.glob("/usr/share/asterisk/sounds/en/**/*.wav", recursive=True))
    speakers = [("allison", None), ("flite-kal16", "kal16"), ("flite-awb", "awb"),
                ("flite-rms", "rms"), ("flite-slt", "slt"), ("festival-ked", "ked")]
    combos = [(a, v) for a in ACCENTS for v in VARIANTS]
    rng.shuffle(combos)
    used = set()
    for accent, variant in combos:
        if variant in used:
            continue
        used.add(variant)
        speakers.append((f"espeak-{accent}-{variant}", f"{accent}+{variant}"))
    speakers = speakers[:33]
    tmp = tempfile.mkdtemp()
    for s, (name, voice) in enumerate(speakers):
        base_pitch = rng.randint(30, 70)
        sessions = rng.randint(2, 8)
        m4a_session = rng.randrange(sessions) if s % 3 == 0 else None
        own = rng.sample(prompts, PER_SPEAKER) if name == "allison" else None
        for u in range(PER_SPEAKER):
            session = u % sessions
            raw = os.path.join(tmp, "u.wav")
            text = sentence(rng)
            if name == "allison":
                raw = own[u]
            elif name.startswith("flite"):
                flite(voice, text, rng.uniform(0.85, 1.2), raw)
            elif name == "festival-ked":
                festival(text, raw)
            else:
                espeak(voice, text, rng.randint(140, 200), base_pitch + rng.randint(-4, 4), raw)
            x, sr = read(raw)
            x = trim(x, sr, rng)
            key = (name, session)
            ch = SESSION_CHANNELS.setdefault(key, channel(rng, args.mild))
            y, rate = apply_channel(x, sr, ch, rng)
            d = os.path.join(args.out, "raw", name, f"session{session}")
            os.makedirs(d, exist_ok=True)
            if session == m4a_session:
                write_m4a(os.path.join(d, f"{u:02d}.m4a"), y, rate)
            else:
                sf.write(os.path.join(d, f"{u:02d}.wav"), y, rate, subtype="PCM_16")
        print(name, flush=True)


if __name__ == "__main__":
    main()
