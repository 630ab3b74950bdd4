"""Non-speech negatives: music from generated MIDI (fluidsynth), coloured noise, mains hum, babble,
silence. All 16 kHz mono float32, deterministic for a given seed."""

from __future__ import annotations

import logging
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from training.synth import SAMPLE_RATE, SynthError, to_16k

log = logging.getLogger(__name__)

SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/default-GM.sf2"))
NOISE_KINDS = ("white", "pink", "brown", "hum", "silence")
_TICKS = 480
# GM programs that make plausible background music: pianos, organs, guitars, strings, brass, pads...
_LEAD = (0, 1, 4, 6, 11, 16, 19, 24, 25, 26, 40, 41, 42, 48, 56, 57, 60, 64, 65, 68, 71, 73, 80, 81, 88)
_BASS = (32, 33, 34, 35, 38, 42, 43, 58)
_CHORD = (0, 2, 4, 5, 16, 18, 24, 27, 46, 48, 49, 50, 52, 61, 89, 91)
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10)}


def _varlen(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def make_midi(rng: np.random.Generator, duration_s: float) -> bytes:
    """A format-0 MIDI song: chord progression, bass, melody and (usually) drums, random GM sounds."""
    bpm = int(rng.integers(60, 170))
    beat_s = 60.0 / bpm
    n_bars = max(1, int(np.ceil(duration_s / (4 * beat_s))))
    scale = _SCALES[str(rng.choice(list(_SCALES)))]
    root = int(rng.integers(48, 60))
    progression = rng.choice([[0, 5, 3, 4], [0, 3, 4, 4], [0, 4, 5, 3], [1, 4, 0, 0], [0, 0, 3, 4]])
    events: list[tuple[int, bytes]] = []  # (absolute tick, message)
    events.append((0, b"\xff\x51\x03" + struct.pack(">I", int(beat_s * 1e6))[1:]))
    for ch, prog in ((0, rng.choice(_CHORD)), (1, rng.choice(_BASS)), (2, rng.choice(_LEAD))):
        events.append((0, bytes([0xC0 | ch, int(prog)])))
    drums = rng.random() < 0.75
    swing = rng.random() < 0.3

    def note(ch: int, tick: int, length: int, pitch: int, vel: int) -> None:
        pitch = int(np.clip(pitch, 0, 127))
        events.append((tick, bytes([0x90 | ch, pitch, int(np.clip(vel, 1, 127))])))
        events.append((tick + max(1, length), bytes([0x80 | ch, pitch, 0])))

    def degree(d: int) -> int:
        return root + 12 * (d // 7) + scale[d % 7]

    for bar in range(n_bars):
        t0 = bar * 4 * _TICKS
        d = int(progression[bar % 4])
        chord_len = 4 * _TICKS if rng.random() < 0.5 else 2 * _TICKS
        for start in range(0, 4 * _TICKS, chord_len):
            for k in (0, 2, 4):
                note(0, t0 + start, chord_len - 10, degree(d + k) + 12, int(rng.integers(45, 75)))
        for b in range(4):
            note(1, t0 + b * _TICKS, _TICKS - 20, degree(d) - 12, int(rng.integers(70, 100)))
        t = 0
        while t < 4 * _TICKS:
            length = int(rng.choice([_TICKS // 2, _TICKS, _TICKS // 4, _TICKS * 2]))
            if rng.random() < 0.8:
                note(
                    2,
                    t0 + t,
                    length - 10,
                    degree(d + int(rng.integers(0, 8))) + 12,
                    int(rng.integers(60, 110)),
                )
            t += length
        if drums:
            for b in range(8):
                tick = t0 + b * _TICKS // 2 + (40 if swing and b % 2 else 0)
                note(9, tick, 60, 42, int(rng.integers(40, 80)))  # hi-hat
                if b % 4 == 0:
                    note(9, tick, 60, 36, 100)  # kick
                if b % 4 == 2:
                    note(9, tick, 60, 38, 90)  # snare
    events.sort(key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80))
    track = bytearray()
    last = 0
    for tick, msg in events:
        track += _varlen(tick - last) + msg
        last = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def soundfont() -> Path:
    for sf2 in SOUNDFONTS:
        if sf2.exists():
            return sf2
    raise SynthError("no General MIDI soundfont (apt install fluid-soundfont-gm)")


def render_music(seed: int, duration_s: float) -> np.ndarray:
    """Generate a song and render it with fluidsynth at 16 kHz; trimmed to `duration_s`."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="wwmusic-") as tmp:
        mid = Path(tmp) / "song.mid"
        wav = Path(tmp) / "song.wav"
        mid.write_bytes(make_midi(rng, duration_s))
        cmd = [
            "fluidsynth",
            "-ni",
            "-q",
            "-g",
            "0.7",
            "-r",
            str(SAMPLE_RATE),
            "-F",
            str(wav),
            str(soundfont()),
            str(mid),
        ]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SynthError(f"fluidsynth: {exc}") from exc
        if res.returncode != 0 or not wav.exists():
            raise SynthError(f"fluidsynth exited {res.returncode}: {res.stderr.strip()[:200]}")
        audio, rate = sf.read(str(wav), dtype="float32")
    audio = to_16k(audio, rate)[: int(duration_s * SAMPLE_RATE)]
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak < 1e-4:
        raise SynthError("fluidsynth rendered silence")
    return (audio * (0.8 / peak)).astype(np.float32)


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """white (flat), pink (1/f power), brown (1/f^2 power), by shaping a white spectrum."""
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[kind]
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freqs[0] = freqs[1] if n > 1 else 1.0
    audio = np.fft.irfft(spec / freqs**exponent, n)
    return _normalise(audio, 0.3)


def mains_hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """50 or 60 Hz with odd/even harmonics and a little broadband hiss."""
    f0 = float(rng.choice([50.0, 60.0])) * (1 + rng.normal(0, 0.002))
    t = np.arange(n) / SAMPLE_RATE
    audio = np.zeros(n)
    for h in range(1, 9):
        audio += rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    audio += 0.02 * rng.standard_normal(n)
    return _normalise(audio, 0.3)


def silence(n: int, rng: np.random.Generator) -> np.ndarray:
    """Near-silence: a microphone's self-noise around -70 dBFS (exact zeros are unrealistic)."""
    return (rng.standard_normal(n) * 10 ** (-70 / 20)).astype(np.float32)


def noise(kind: str, duration_s: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(duration_s * SAMPLE_RATE)
    if kind == "hum":
        return mains_hum(n, rng)
    if kind == "silence":
        return silence(n, rng)
    return coloured_noise(kind, n, rng)


def babble(clips: list[np.ndarray], duration_s: float, seed: int) -> np.ndarray:
    """Overlap several speech clips (looped to length, random offsets and gains): cafe chatter."""
    if not clips:
        raise SynthError("babble needs speech clips")
    rng = np.random.default_rng(seed)
    n = int(duration_s * SAMPLE_RATE)
    out = np.zeros(n, np.float64)
    for clip in clips:
        if len(clip) == 0:
            continue
        reps = int(np.ceil((n + len(clip)) / len(clip)))
        looped = np.tile(clip, reps)
        start = int(rng.integers(0, len(clip)))
        out += looped[start : start + n] * rng.uniform(0.3, 1.0)
    return _normalise(out, 0.5)


def _normalise(audio: np.ndarray, peak: float) -> np.ndarray:
    m = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return (audio * (peak / m) if m > 0 else audio).astype(np.float32)
