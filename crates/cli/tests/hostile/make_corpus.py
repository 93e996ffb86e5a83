#!/usr/bin/env python3
"""Writes the hostile-input corpus that tests/hostile.rs drives through hark.

Run from anywhere: `python3 crates/cli/tests/hostile/make_corpus.py`. It
rewrites every generated file beside it (standard library only, deterministic:
the committed files are its output). What each case is, and what hark must
say about it, is the table in tests/hostile.rs.
"""

import math
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def riff(*chunks, form=b"WAVE", size=None):
    body = form + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def chunk(tag, data, size=None):
    pad = b"\0" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data) if size is None else size) + data + pad


def fmt(tag=1, channels=1, rate=8000, bits=16, align=None, byte_rate=None, extra=b""):
    align = channels * bits // 8 if align is None else align
    byte_rate = rate * align if byte_rate is None else byte_rate
    body = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits)
    if extra:
        body += struct.pack("<H", len(extra)) + extra
    return chunk(b"fmt ", body)


def tone(n, rate=8000, freq=440.0, amp=0.3):
    return [amp * math.sin(2 * math.pi * freq * i / rate) for i in range(n)]


def pcm16(samples):
    return b"".join(struct.pack("<h", int(s * 32767)) for s in samples)


def good_wav(seconds=0.2, rate=8000, freq=440.0):
    return riff(fmt(rate=rate), chunk(b"data", pcm16(tone(int(seconds * rate), rate, freq))))


def write(rel, data):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# --- WAV files --------------------------------------------------------------

PCM = pcm16(tone(2000))
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def extensible(sub, fmt_len=40, channels=1, bits=16):
    ext = struct.pack("<HI", bits, 0) + struct.pack("<H", sub) + GUID_TAIL
    body = struct.pack("<HHIIHH", 0xFFFE, channels, 8000, 16000 * channels, 2 * channels, bits)
    body += struct.pack("<H", 22) + ext
    return chunk(b"fmt ", body[:fmt_len])


WAVS = {
    "empty": b"",
    "riff-only": b"RIFF",
    "not-wave": riff(fmt(), chunk(b"data", PCM), form=b"AVI "),
    "rifx": b"RIFX" + riff(fmt(), chunk(b"data", PCM))[4:],
    "text": b"this is not audio at all\n" * 20,
    "no-fmt": riff(chunk(b"data", PCM)),
    "no-data": riff(fmt()),
    "data-before-fmt": riff(chunk(b"data", PCM), fmt()),
    "fmt-short": riff(chunk(b"fmt ", b"\x01\x00\x01\x00"), chunk(b"data", PCM)),
    "fmt-huge-len": riff(chunk(b"fmt ", b"\x01\x00", size=0xFFFFFFF0)),
    "zero-channels": riff(fmt(channels=0, align=2), chunk(b"data", PCM)),
    "zero-rate": riff(fmt(rate=0), chunk(b"data", PCM)),
    "rate-1hz": riff(fmt(rate=1), chunk(b"data", PCM)),
    "rate-4ghz": riff(fmt(rate=4_000_000_000, byte_rate=0), chunk(b"data", pcm16(tone(22000)))),
    "channels-65535": riff(fmt(channels=65535, align=65535 * 2 % 65536, byte_rate=0),
                           chunk(b"data", bytes(131070))),
    "channels-1024": riff(fmt(channels=1024, align=2048 % 65536, byte_rate=0),
                          chunk(b"data", bytes(2048 * 40))),
    "zero-align": riff(fmt(align=0), chunk(b"data", PCM)),
    "align-mismatch": riff(fmt(bits=24, align=5), chunk(b"data", PCM)),
    "bits-0": riff(fmt(bits=0, align=2), chunk(b"data", PCM)),
    "bits-7": riff(fmt(bits=7, align=1), chunk(b"data", PCM)),
    "bits-64-int": riff(fmt(bits=64), chunk(b"data", PCM)),
    "float-16": riff(fmt(tag=3, bits=16), chunk(b"data", PCM)),
    "float-nan": riff(fmt(tag=3, bits=32), chunk(b"data", struct.pack("<f", float("nan")) * 2000)),
    "float-inf": riff(fmt(tag=3, bits=32),
                      chunk(b"data", struct.pack("<f", 0.1) * 1000 + struct.pack("<f", float("inf")) * 1000)),
    "mp3-tag": riff(fmt(tag=0x55), chunk(b"data", PCM)),
    "ext-short": riff(extensible(1, fmt_len=24), chunk(b"data", PCM)),
    "ext-unknown-guid": riff(extensible(0x77), chunk(b"data", PCM)),
    "data-len-huge": riff(fmt(), chunk(b"data", PCM, size=0xFFFFFFF0)),
    "data-odd-truncated": riff(fmt(), chunk(b"data", PCM[:-1] + b"", size=len(PCM) - 1))[:-1],
    "riff-size-huge": riff(fmt(), chunk(b"data", PCM), size=0xFFFFFFFF),
    "junk-huge-len": riff(chunk(b"JUNK", b"", size=0xFFFFFFF0), fmt(), chunk(b"data", PCM)),
    "two-fmt": riff(fmt(), fmt(channels=2, align=4), chunk(b"data", PCM)),
    "data-empty": riff(fmt(), chunk(b"data", b"")),
    "data-one-byte": riff(fmt(), chunk(b"data", b"\x01")),
    "ima-align-4-stereo": riff(fmt(tag=0x11, channels=2, bits=4, align=4, byte_rate=0),
                               chunk(b"data", bytes(4096))),
    "ms-align-2": riff(fmt(tag=2, channels=1, bits=4, align=2, byte_rate=0), chunk(b"data", bytes(4096))),
    "ima-per-block-65535": riff(fmt(tag=0x11, channels=1, bits=4, align=36, byte_rate=0,
                                    extra=struct.pack("<H", 65535)),
                                chunk(b"data", bytes(36 * 1000))),
    "ima-per-block-0": riff(fmt(tag=0x11, channels=1, bits=4, align=36, byte_rate=0,
                                extra=struct.pack("<H", 0)),
                            chunk(b"data", bytes(36 * 10))),
    "ima-fact-huge": riff(fmt(tag=0x11, channels=1, bits=4, align=36, byte_rate=0,
                              extra=struct.pack("<H", 65)),
                          chunk(b"fact", struct.pack("<I", 0xFFFFFFFF)),
                          chunk(b"data", bytes(36 * 10))),
    "ms-fact-huge": riff(fmt(tag=2, channels=1, bits=4, align=256, byte_rate=0,
                             extra=struct.pack("<HH", 500, 7) + bytes(28)),
                         chunk(b"fact", struct.pack("<I", 0xFFFFFFFF)),
                         chunk(b"data", bytes(256 * 4))),
    "ms-coefs-0": riff(fmt(tag=2, channels=1, bits=4, align=256, byte_rate=0,
                           extra=struct.pack("<HH", 500, 0)),
                       chunk(b"data", bytes(256 * 4))),
    "ms-coefs-huge": riff(fmt(tag=2, channels=1, bits=4, align=256, byte_rate=0,
                              extra=struct.pack("<HH", 500, 65535)),
                          chunk(b"data", bytes(256 * 4))),
    "ms-bad-predictor": riff(fmt(tag=2, channels=1, bits=4, align=256, byte_rate=0,
                                 extra=struct.pack("<HH", 500, 7) + bytes(28)),
                             chunk(b"data", b"\x63" + bytes(255))),
}

# --- Compressed audio -------------------------------------------------------
#
# FLAC frames are written here; MP3, Ogg and M4A cases are cut or patched
# copies of the data crate's fixtures.

FIXTURES = os.path.join(HERE, "..", "..", "..", "data", "tests", "data", "compressed")


def crc8(data):
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def utf8_number(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | n >> 6, 0x80 | n & 0x3F])
    return bytes([0xE0 | n >> 12, 0x80 | n >> 6 & 0x3F, 0x80 | n & 0x3F])


def flac(frames, block=65535, rate=8000, value=0):
    """A mono 16-bit FLAC of `frames` constant frames of `block` samples:
    about 11 bytes a frame, however long the block."""
    total = frames * block
    info = struct.pack(">HH", block, block) + bytes(6)
    info += struct.pack(">Q", rate << 44 | 0 << 41 | 15 << 36 | total) + bytes(16)
    out = b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info
    for n in range(frames):
        head = b"\xff\xf8\x70\x08" + utf8_number(n) + struct.pack(">H", block - 1)
        head += bytes([crc8(head)])
        frame = head + b"\x00" + struct.pack(">h", value)
        out += frame + struct.pack(">H", crc16(frame))
    return out


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def patch_atom(data, tag, offset, value):
    """`data` with the 32-bit big-endian field `offset` bytes into the
    first `tag` atom's body set to `value`."""
    at = data.index(tag) + 4 + offset
    return data[:at] + struct.pack(">I", value) + data[at + 4:]


def compressed():
    m4a, mp3, ogg, tone_flac = (fixture(f"tone.{e}") for e in ("m4a", "mp3", "ogg", "flac"))
    return {
        "flac-bomb.flac": flac(8000),
        "flac-rate-100.flac": flac(4, block=4096, rate=100, value=1000),
        "flac-cut.flac": tone_flac[:60],
        "flac-bad-crc.flac": flac(2, block=4096)[:-1] + b"\x00",
        "mp3-cut.mp3": mp3[:200],
        "mp3-garbage.mp3": mp3[:4] + bytes(range(256)) * 8,
        "ogg-cut.ogg": ogg[:100],
        "m4a-cut.m4a": m4a[: len(m4a) // 3],
        "m4a-stsz-huge.m4a": patch_atom(m4a, b"stsz", 8, 0xFFFFFFFF),
        "m4a-stts-huge.m4a": patch_atom(m4a, b"stts", 4, 0xFFFFFFFF),
        "m4a-moov-huge.m4a": patch_atom(m4a, b"moov", -8, 0xFFFFFFF0),
        "m4a-mdhd-rate-0.m4a": patch_atom(m4a, b"mdhd", 12, 0),
    }


# --- Datasets ---------------------------------------------------------------

US8K_HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
CLASSES = ["dog", "siren", "drill"]


def us8k(name, rows, files=None, header=US8K_HEADER, raw=None):
    """An UrbanSound8K-layout dataset `us8k/NAME`; rows are (file, fold, id,
    class), files (name, fold, bytes) only where hark gets as far as audio."""
    root = f"us8k/{name}"
    text = raw if raw is not None else header + "".join(
        f"{f},{i},0,0.2,1,{fold},{cid},{cls}\n" for i, (f, fold, cid, cls) in enumerate(rows))
    write(f"{root}/metadata/UrbanSound8K.csv", text)
    for f, fold, data in files or []:
        write(f"{root}/audio/fold{fold}/{f}", data)


def good_rows():
    rows, files = [], []
    for fold in (1, 2, 3):
        for cid, cls in enumerate(CLASSES):
            f = f"{cls}-{fold}.wav"
            rows.append((f, fold, cid, cls))
            files.append((f, fold, good_wav(freq=200.0 * (cid + 1) + 13 * fold)))
    return rows, files


def datasets():
    rows, files = good_rows()
    us8k("good", rows, files)
    first = rows[0]
    us8k("missing-column", rows, raw=US8K_HEADER.replace(",classID", "") +
         "".join(f"{f},1,0,0.25,1,{fold},{cls}\n" for f, fold, _, cls in rows))
    us8k("unmatched-quote", rows, raw=US8K_HEADER + '"dog-1.wav,0,0,0.25,1,1,0,dog\n' +
         "".join(f"{f},1,0,0.25,1,{fold},{cid},{cls}\n" for f, fold, cid, cls in rows[1:]) * 40)
    us8k("class-id-text", [(f, fold, "x" if i == 4 else cid, cls)
                           for i, (f, fold, cid, cls) in enumerate(rows)])
    us8k("fold-0", [(f, 0 if i == 2 else fold, cid, cls) for i, (f, fold, cid, cls) in enumerate(rows)])
    us8k("fold-11", [(f, 11 if i == 2 else fold, cid, cls) for i, (f, fold, cid, cls) in enumerate(rows)])
    us8k("fold-negative", [(f, -1 if i == 2 else fold, cid, cls)
                           for i, (f, fold, cid, cls) in enumerate(rows)])
    us8k("class-id-gap", [(f, fold, 2 * cid, cls) for f, fold, cid, cls in rows], files)
    us8k("class-id-conflict", rows[:-1] + [(rows[-1][0], rows[-1][1], 0, "drill")])
    us8k("duplicate-file", rows + [first])
    us8k("header-only", [])
    us8k("empty-csv", [], raw="")
    us8k("dotdot-path", rows + [("../../../good/audio/fold1/dog-1.wav", 2, 0, "dog")], files)
    us8k("absolute-path", rows + [("/etc/hostname", 2, 0, "dog")], files)
    us8k("long-class-name", [(f, fold, cid, "x" * 65536 if cid == 1 else cls)
                             for f, fold, cid, cls in rows], files)
    us8k("nul-byte", rows, raw=US8K_HEADER + "dog-1.wav\0,0,0,0.25,1,1,0,dog\n")
    us8k("not-utf8", rows, raw=US8K_HEADER.encode() + b"dog-1.wav,0,0,0.25,1,1,0,\xff\xfe\n")
    us8k("short-row", rows, raw=US8K_HEADER + "dog-1.wav,0,0\n")
    us8k("start-after-end", rows, raw=US8K_HEADER + "dog-1.wav,0,3,1,1,1,0,dog\n")
    us8k("start-nan", rows, raw=US8K_HEADER + "dog-1.wav,0,NaN,1,1,1,0,dog\n")
    us8k("one-class", [r for r in rows if r[2] == 0], files)
    us8k("missing-files", rows, files[:3])
    # A bad WAV among good ones: reported and skipped (or fatal with strict).
    us8k("one-bad-wav", rows, files[:-1] + [(files[-1][0], files[-1][1], WAVS["ima-align-4-stereo"])])
    us8k("all-bad-wavs", rows, [(f, fold, WAVS["text"]) for f, fold, _ in files])
    us8k("huge-id", [(f, fold, 10**12 if cid == 2 else cid, cls) for f, fold, cid, cls in rows], files)


def trees():
    """Folder-per-class and speaker trees under `trees/`, each with a config
    of the same name."""
    good = [(f"{c}/{c}-{i}.wav", good_wav(0.2, freq=f)) for c, f in (("a", 300), ("b", 900))
            for i in range(4)]
    cases = {
        # A file, not a folder: git keeps no empty directories.
        "folders-empty": ("folders", [("notes.txt", "no class folders here")]),
        "folders-one-class": ("folders", [(p, d) for p, d in good if p.startswith("a/")]),
        "folders-empty-class": ("folders", good + [("c/notes.txt", "not audio")]),
        "folders-bad-file": ("folders", good + [("b/b-bad.wav", WAVS["text"])]),
        "folders-all-bad": ("folders", [(p, WAVS["data-empty"]) for p, _ in good]),
        "speakers-no-raw": ("speakers", [("a/s1/x.wav", good_wav())]),
        "speakers-flat": ("speakers", [(f"raw/{p}", d) for p, d in good]),
        "speakers-one": ("speakers", [(f"raw/a/s{i}/x.wav", good_wav()) for i in range(4)]),
        "speakers-bad-file": ("speakers", [(f"raw/{p[0]}/s{p[-5]}/{p[2:]}", d) for p, d in good]
                              + [("raw/a/s0/bad.wav", WAVS["ima-align-4-stereo"])]),
        "speakers-empty-speaker": ("speakers", [(f"raw/{p[0]}/s{p[-5]}/{p[2:]}", d) for p, d in good]
                                   + [("raw/c/s0/readme.txt", "no audio here")]),
    }
    for name, (kind, files) in cases.items():
        os.makedirs(os.path.join(HERE, "trees", name), exist_ok=True)
        for rel, data in files:
            write(f"trees/{name}/{rel}", data)
        split = "\nsplit = { train = 0.5, val = 0.25, test = 0.25 }" if kind == "folders" else ""
        config(f"tree-{name}", replace=[('kind = "urbansound8k"\npath = "us8k/good"',
                                         f'kind = "{kind}"\npath = "trees/{name}"{split}')])


# --- Configs ----------------------------------------------------------------

GOOD_CONFIG = """\
[data]
kind = "urbansound8k"
path = "us8k/good"
cache_dir = "cache"

[features]
channels = 1
duration = 0.2
mel = {{ sample_rate = 8000, n_fft = 256, hop_length = 128, n_mels = 16 }}

[model]
kind = "audio_cnn"

[train]
epochs = 1
batch_size = 4
threads = 1
{train}

[output]
dir = "out/{name}"
"""


def config(name, train="", replace=None):
    text = GOOD_CONFIG.format(name=name, train=train)
    for old, new in replace or []:
        assert old in text, (name, old)
        text = text.replace(old, new)
    write(f"config/{name}.toml", text)


def configs():
    config("good")
    config("not-toml", replace=[("[model]", "[model")])
    config("unknown-key", train="colour = 3")
    config("wrong-type", train='', replace=[("epochs = 1", 'epochs = "one"')])
    config("batch-size-0", replace=[("batch_size = 4", "batch_size = 0")])
    config("epochs-0", replace=[("epochs = 1", "epochs = 0")])
    config("epochs-huge", replace=[("epochs = 1", "epochs = 1000000000000")])
    config("threads-huge", replace=[("threads = 1", "threads = 100000")])
    config("lr-negative", train='optimizer = { kind = "adam", lr = -1e-3 }')
    config("lr-nan", train='optimizer = { kind = "adam", lr = nan }')
    config("lr-inf", train='optimizer = { kind = "sgd", lr = inf }')
    config("weight-decay-negative", train='optimizer = { kind = "adam_w", weight_decay = -1.0 }')
    config("betas-out-of-range", train='optimizer = { kind = "adam", betas = [1.5, 0.999] }')
    config("grad-clip-negative", train="grad_clip = -1.0")
    config("momentum-5", train='optimizer = { kind = "sgd", lr = 0.1, momentum = 5.0 }')
    config("eps-0", train='optimizer = { kind = "adam", eps = 0.0 }')
    config("output-dir-empty", replace=[('dir = "out/output-dir-empty"', 'dir = ""')])
    config("grad-clip-nan", train="grad_clip = nan")
    config("patience-0", train="early_stopping = { patience = 0 }")
    config("label-smoothing-1", train="label_smoothing = 1.0")
    config("mixup-negative", train="mixup = -0.5")
    config("one-cycle-pct-2", train='schedule = { kind = "one_cycle", pct_start = 2.0 }')
    config("step-size-0", train='schedule = { kind = "step", step_size = 0 }')
    config("gamma-negative", train='schedule = { kind = "step", step_size = 1, gamma = -0.5 }')
    config("split-val-negative", replace=[('path = "us8k/good"',
                                           'path = "us8k/good"\nignore_folds = true\n'
                                           'split = { train = 1.2, val = -0.2, test = 0.0 }')])
    config("split-sum", replace=[('path = "us8k/good"',
                                  'path = "us8k/good"\nignore_folds = true\n'
                                  'split = { train = 0.8, val = 0.8, test = 0.8 }')])
    config("fold-99", replace=[('path = "us8k/good"', 'path = "us8k/good"\nfold = 99')])
    config("duration-huge", replace=[("duration = 0.2", "duration = 1e9")])
    config("duration-negative", replace=[("duration = 0.2", "duration = -1.0")])
    config("duration-nan", replace=[("duration = 0.2", "duration = nan")])
    config("n-fft-huge", replace=[("n_fft = 256", "n_fft = 1000000000")])
    config("n-fft-0", replace=[("n_fft = 256", "n_fft = 0")])
    config("hop-0", replace=[("hop_length = 128", "hop_length = 0")])
    config("n-mels-0", replace=[("n_mels = 16", "n_mels = 0")])
    config("n-mels-huge", replace=[("n_mels = 16", "n_mels = 100000")])
    config("sample-rate-0", replace=[("sample_rate = 8000", "sample_rate = 0")])
    config("sample-rate-huge", replace=[("sample_rate = 8000", "sample_rate = 4000000000")])
    config("channels-0", replace=[("channels = 1", "channels = 0")])
    config("channels-huge", replace=[("channels = 1", "channels = 100000")])
    config("dropout-2", replace=[('kind = "audio_cnn"', 'kind = "audio_cnn"\ndropout = 2.0')])
    config("crnn-input-too-short", replace=[('kind = "audio_cnn"', 'kind = "crnn"')])
    config("width-huge", replace=[('kind = "audio_cnn"', 'kind = "audio_cnn"\nwidth = 100000')])
    config("top-db-negative", replace=[("n_mels = 16 }", "n_mels = 16 }\ndb = { top_db = -80.0 }")])
    config("noise-prob-2", replace=[("[model]", "[augment]\nnoise = { prob = 2.0, std = 0.1 }\n\n[model]")])
    for name, table in [
        ("noise-std-negative", "noise = { prob = 0.5, std = -0.1 }"),
        ("noise-snr-nan", "noise = { prob = 0.5, snr_db = nan }"),
        ("noise-both", "noise = { prob = 0.5, std = 0.1, snr_db = 10.0 }"),
        ("crop-fraction-2", "crop = { prob = 0.5, max_fraction = 2.0 }"),
        ("stretch-delta-1", "stretch = { prob = 0.5, max_delta = 1.0 }"),
        ("spec-noise-inf", "spec_noise = inf"),
        ("spec-augment-many", "spec_augment = { freq_masks = 1000000000000 }"),
    ]:
        config(name, replace=[("[model]", f"[augment]\n{table}\n\n[model]")])
    config("time-shift-nan", replace=[("[model]", "[augment]\ntime_shift = nan\n\n[model]")])
    config("data-path-missing", replace=[('path = "us8k/good"', 'path = "us8k/nowhere"')])
    config("data-path-file", replace=[('path = "us8k/good"', 'path = "wav/text.wav"')])
    config("cache-dir-file", replace=[('cache_dir = "cache"', 'cache_dir = "wav/text.wav"')])
    config("output-dir-file", replace=[('dir = "out/output-dir-file"', 'dir = "wav/text.wav"')])
    config("dotdot-dataset", replace=[('path = "us8k/good"', 'path = "us8k/dotdot-path"')])
    config("absolute-dataset", replace=[('path = "us8k/good"', 'path = "us8k/absolute-path"')])
    config("long-class-dataset", replace=[('path = "us8k/good"', 'path = "us8k/long-class-name"')])
    config("one-class-dataset", replace=[('path = "us8k/good"', 'path = "us8k/one-class"')])
    config("huge-id-dataset", replace=[('path = "us8k/good"', 'path = "us8k/huge-id"')])
    config("gap-dataset", replace=[('path = "us8k/good"', 'path = "us8k/class-id-gap"')])
    config("all-bad-dataset", replace=[('path = "us8k/good"', 'path = "us8k/all-bad-wavs"')])
    config("one-bad-strict", replace=[('path = "us8k/good"', 'path = "us8k/one-bad-wav"\nstrict = true')])
    write("config/empty.toml", "")
    write("config/binary.toml", bytes(range(256)) * 4)


def main():
    for sub in ("wav", "us8k", "config", "trees"):
        shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
    for name, data in WAVS.items():
        write(f"wav/{name}.wav", data)
    write("wav/good.wav", good_wav())
    for name, data in compressed().items():
        write(f"wav/{name}", data)
    datasets()
    configs()
    trees()


if __name__ == "__main__":
    main()
