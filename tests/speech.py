"""Speech clips synthesised at test time with espeak-ng (nothing is committed or downloaded).

Clips are 16 kHz mono WAVs built as silence + speech + silence, so the time the
keyword ends is known from the construction: where the trimmed synthesis ends.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
#: An espeak-ng accent never trained on: training/voices.py holds it out whole (ESPEAK_VAL_ACCENTS).
HELD_OUT_VOICE = "en-gb-x-gbcwmd"
OTHER_TEXT = (
    "The weather this morning is cloudy with a light breeze. "
    "Please remember to water the plants and call your sister before dinner."
)


@dataclass(frozen=True)
class SpeechClip:
    """A synthesised clip and where its speech sits (seconds from the clip start)."""

    path: Path
    samples: np.ndarray  # float32, 16 kHz mono
    speech_start_s: float
    speech_end_s: float

    @property
    def duration_s(self) -> float:
        return self.samples.size / RATE


def espeak_missing() -> str | None:
    """Why synthesis cannot run here (for pytest.skip), or None when it can."""
    if shutil.which("espeak-ng") is None:
        return "espeak-ng is not installed (deploy/install-system-packages.sh test installs it)"
    return None


def synthesize(text: str, *, voice: str = "en-us", speed: int = 150, pitch: int = 50) -> np.ndarray:
    """espeak-ng speech as float32 16 kHz mono with the leading/trailing silence trimmed."""
    text = text.lstrip("-")  # espeak-ng reads a leading '-' as an option
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != RATE:
        audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r}")
    return np.ascontiguousarray(audio[loud[0] : loud[-1] + 1])


def write_wav(
    path: Path, samples: np.ndarray, *, rate: int = RATE, channels: int = 1, subtype: str = "PCM_16"
) -> Path:
    """Write 16 kHz mono float samples as a WAV at another rate/channel count/sample format."""
    audio = np.asarray(samples, dtype=np.float32)
    if rate != RATE:
        audio = soxr.resample(audio, RATE, rate).astype(np.float32)
    if channels > 1:
        audio = np.repeat(audio[:, None], channels, axis=1)
    sf.write(str(path), audio, rate, subtype=subtype)
    return Path(path)


def _clip(path: Path, speech: np.ndarray, lead_s: float, tail_s: float) -> SpeechClip:
    lead = np.zeros(int(lead_s * RATE), dtype=np.float32)
    tail = np.zeros(int(tail_s * RATE), dtype=np.float32)
    samples = np.concatenate([lead, 0.5 * speech / max(1e-6, float(np.abs(speech).max())), tail])
    write_wav(path, samples)
    samples = sf.read(str(path), dtype="float32")[0]  # what is on disk (16-bit)
    return SpeechClip(Path(path), samples, lead.size / RATE, (lead.size + speech.size) / RATE)


def keyword_clip(
    path: Path, word: str = "espresso", *, lead_s: float = 1.0, tail_s: float = 1.5, voice: str = "en-us"
) -> SpeechClip:
    """Silence, the keyword, silence; ``speech_end_s`` is the keyword end."""
    return _clip(path, synthesize(word, voice=voice), lead_s, tail_s)


def other_speech_clip(
    path: Path, text: str = OTHER_TEXT, *, lead_s: float = 0.5, tail_s: float = 0.5, voice: str = "en-us"
) -> SpeechClip:
    """Ordinary speech without the wake word."""
    return _clip(path, synthesize(text, voice=voice), lead_s, tail_s)


def bursts_clip(path: Path, starts: list[float], duration_s: float, burst_s: float = 0.4) -> Path:
    """Digital silence with loud noise bursts at ``starts`` (what conftest's loud model fires on)."""
    rng = np.random.default_rng(7)
    audio = np.zeros(int(duration_s * RATE), dtype=np.float32)
    for start in starts:
        a = int(start * RATE)
        audio[a : a + int(burst_s * RATE)] = 0.3 * rng.standard_normal(int(burst_s * RATE))
    sf.write(path, audio, RATE, subtype="PCM_16")
    return path
