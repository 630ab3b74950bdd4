"""``wakeword enroll``: record the user saying the wake word, score each take, recommend a threshold.

Why: the shipped default threshold is chosen for a false-accept target on synthetic voices;
only the user's own voice in their own room says whether it catches *them*. Each take is cut
with a simple energy VAD, run through the same :class:`~wakeword.engine.Detector` as ``listen``
and saved (WAV + JSON, the ``--save-clips`` layout, kind ``enrollment``) so later training can
use the takes as real positives. The recommendation is the highest threshold that still
catches every take with a margin; below the model's default it says what that costs (from the
model card, when there is one) instead of recommending it silently.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from wakeword.audio import float_to_int16, read_audio_file
from wakeword.clips import Clip, ClipStore, file_sha256
from wakeword.engine import Detector, detect_samples
from wakeword.errors import AudioError, ConfigError

if TYPE_CHECKING:
    from wakeword.audio import AudioSource
    from wakeword.metadata import DetectorSettings

log = logging.getLogger(__name__)

RATE = 16000
VAD_FRAME_S = 0.02
MIN_SPEECH_S = 0.15  # shorter bursts are clicks, not words
MAX_GAP_S = 0.3  # quieter stretches inside one word ("es-PRESS-o") are bridged
CONTEXT_S = 1.0  # audio kept before and after each utterance (the model needs a lead-in)
RECORD_S = 2.5  # how long each take listens after "now"
MARGIN_LOGIT = 0.5  # the recommended threshold is this far below the weakest take, in log-odds
MIN_USEFUL = 0.05  # takes that fire only below this are not counted as caught at any threshold
MAX_STDIN_S = 1800.0


@dataclass(frozen=True)
class Take:
    """One utterance: its clip (with context), where the speech is in it, and how the model scored it."""

    index: int
    samples: np.ndarray  # int16 16 kHz mono clip
    clip_start_s: float  # in the input (scripted) or since recording began
    speech_start_s: float  # within the clip
    speech_end_s: float
    peak: float = 0.0  # highest smoothed score
    peak_time_s: float = 0.0  # within the clip
    fire_level: float = 0.0  # the highest threshold at which it fires with the current patience
    detected: bool = False
    path: Path | None = None


def default_out_dir(wake_word: str) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(base) / "wakeword" / "enroll" / wake_word


def find_utterances(audio: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample ranges of speech: 20 ms frames well above the recording's noise floor."""
    audio = np.asarray(audio, dtype=np.float32)
    hop = int(VAD_FRAME_S * RATE)
    n = audio.size // hop
    if n == 0:
        return []
    frames = audio[: n * hop].reshape(n, hop)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    floor = float(np.percentile(db, 10))
    level = max(floor + 15.0, -55.0)  # 15 dB over the floor, and never in digital silence
    loud = db >= level
    segments: list[list[int]] = []
    for i in np.flatnonzero(loud):
        if segments and i - segments[-1][1] <= int(MAX_GAP_S / VAD_FRAME_S):
            segments[-1][1] = i + 1
        else:
            segments.append([i, i + 1])
    keep = [(a * hop, b * hop) for a, b in segments if (b - a) * VAD_FRAME_S >= MIN_SPEECH_S]
    return keep


def cut_takes(audio: np.ndarray, count: int) -> list[Take]:
    """The first ``count`` utterances of a recording, each with up to 1 s of context (never a neighbour's)."""
    spans = find_utterances(audio)[:count]
    ctx = int(CONTEXT_S * RATE)
    takes = []
    for i, (start, end) in enumerate(spans):
        lo = max(0, start - ctx, (spans[i - 1][1] + start) // 2 if i else 0)
        hi = min(audio.size, end + ctx, (end + spans[i + 1][0]) // 2 if i + 1 < len(spans) else audio.size)
        takes.append(
            Take(
                index=i + 1,
                samples=float_to_int16(audio[lo:hi]),
                clip_start_s=lo / RATE,
                speech_start_s=(start - lo) / RATE,
                speech_end_s=(end - lo) / RATE,
            )
        )
    return takes


def _fire_level(scores: Sequence[float], patience: int) -> float:
    """Highest threshold that ``patience`` frames in a row reach: the max over windows of the window min."""
    if len(scores) < patience or not scores:
        return 0.0
    values = np.asarray(scores, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(values, patience)
    return float(windows.min(axis=1).max())


def score_takes(takes: list[Take], detector: Detector) -> list[Take]:
    """Run each take through the detector; fill in peak, fire level and whether it fires now."""
    (word, debouncer), *_ = detector.debouncers.items()
    scored = []
    for take in takes:
        frames: list[float] = []
        debouncer.score_sink = lambda first, scores, into=frames: into.extend(scores)
        try:
            detections = detect_samples(take.samples, detector)
        finally:
            debouncer.score_sink = None
        peak_frame = int(np.argmax(frames)) if frames else 0
        scored.append(
            _replace(
                take,
                peak=max(frames, default=0.0),
                peak_time_s=debouncer.frame_time(peak_frame),
                fire_level=_fire_level(frames, debouncer.settings.patience_frames),
                detected=any(d.wake_word == word for d in detections),
            )
        )
    return scored


def _replace(take: Take, **changes: Any) -> Take:
    from dataclasses import replace

    return replace(take, **changes)


# --------------------------------------------------------------------------- recommendation


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _floor3(value: float) -> float:
    return math.floor(value * 1000) / 1000


def _card_points(model_path: Path) -> list[dict]:
    """The model card's DET points (threshold, fa_per_hour, confusable_fa_rate), if a card sits next to it."""
    card = Path(model_path).with_suffix(".yaml")
    try:
        import yaml

        data = yaml.safe_load(card.read_text())
    except Exception:  # no card, unreadable card: the recommendation just says less
        return []
    points = data.get("det_points") if isinstance(data, dict) else None
    if not isinstance(points, list):
        return []
    return [p for p in points if isinstance(p, dict) and isinstance(p.get("threshold"), (int, float))]


def _point_at(points: list[dict], threshold: float) -> dict | None:
    """The card point at the highest measured threshold at or below ``threshold`` (the costlier side)."""
    below = [p for p in points if p["threshold"] <= threshold + 1e-9]
    return max(below, key=lambda p: p["threshold"]) if below else None


def _cost(point: dict | None) -> str:
    if point is None:
        return "not measured"
    parts = []
    if isinstance(point.get("fa_per_hour"), (int, float)):
        parts.append(f"{point['fa_per_hour']:.2g} false accepts/h")
    if isinstance(point.get("confusable_fa_rate"), (int, float)):
        parts.append(f"{100 * point['confusable_fa_rate']:.1f}% of sound-alikes firing")
    return " and ".join(parts) or "not measured"


def recommend(
    takes: Sequence[Take], current: DetectorSettings, default_threshold: float, model_path: Path
) -> list[str]:
    """Advice: the highest threshold that still catches every take, and its price below the default."""
    useful = [t for t in takes if t.fire_level >= MIN_USEFUL]
    lines = []
    lost = [t for t in takes if t.fire_level < MIN_USEFUL]
    if lost:
        numbers = ", ".join(str(t.index) for t in lost)
        lines.append(
            f"Take(s) {numbers} barely registered (score below {MIN_USEFUL}) at any threshold: re-record "
            "them (closer to the microphone, the word alone), or check the input level."
        )
    if not useful:
        lines.append("No take scored high enough to recommend a threshold.")
        return lines
    weakest = min(t.fire_level for t in useful)
    advised = _floor3(min(0.999, 1 / (1 + math.exp(-(_logit(weakest) - MARGIN_LOGIT)))))
    caught = sum(t.detected for t in takes)
    lines.append(
        f"{caught} of {len(takes)} takes fire at the current threshold {current.threshold:g} "
        f"(patience {current.patience_frames} frames)."
    )
    if advised >= default_threshold:
        lines.append(
            f"Recommended threshold: {advised:g} (every take fires up to {_floor3(weakest):g}; this keeps "
            f"a margin). It is at or above the model's default {default_threshold:g}, so false accepts can "
            f"only go down; but {len(takes)} takes are a small sample (a tired voice or a noisy room scores "
            "lower), so raise it only if false wakes bother you."
        )
        return lines
    points = _card_points(model_path)
    lines.append(
        f"To catch every take with a margin the threshold would have to be {advised:g}, below the model's "
        f"default {default_threshold:g}, which was chosen for its false-accept target."
    )
    if points:
        lines.append(
            f"That costs false accepts: the model card measures {_cost(_point_at(points, advised))} "
            f"at that threshold, against {_cost(_point_at(points, default_threshold))} at the default."
        )
    else:
        lines.append("That costs false accepts (this model has no card to say how many).")
    lines.append(
        "Keep the default unless misses bother you more than false wakes; re-recording the weakest takes "
        "(a steady voice, closer to the microphone) may lift them. To change it: --threshold or "
        "`threshold:` under the model in the config."
    )
    return lines


# --------------------------------------------------------------------------- input


def read_stdin_pcm(stream: Any = None) -> np.ndarray:
    """All of stdin as raw s16le 16 kHz mono (what ``listen --input -`` reads), as float32."""
    stream = stream if stream is not None else sys.stdin.buffer
    data = stream.read(int(MAX_STDIN_S * RATE * 2) + 2)
    if len(data) > MAX_STDIN_S * RATE * 2:
        raise AudioError(
            f"stdin: more than {MAX_STDIN_S / 60:.0f} minutes of audio; enroll wants a few takes"
        )
    data = data[: len(data) // 2 * 2]
    if not data:
        raise AudioError("stdin: no audio (expected raw s16le 16 kHz mono PCM)")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def read_input(spec: str) -> np.ndarray:
    return read_stdin_pcm() if spec == "-" else read_audio_file(spec)


def _record(source: AudioSource, seconds: float) -> np.ndarray:
    want = int(seconds * RATE)
    got: list[np.ndarray] = []
    n = 0
    while n < want:
        chunk = source.read(0.25)
        if chunk is None:
            raise AudioError(f"{source.description}: the input ended while recording")
        got.append(chunk)
        n += chunk.size
    audio = np.concatenate(got) if got else np.zeros(0, dtype=np.int16)
    return audio.astype(np.float32) / 32768.0


def record_takes(
    source: AudioSource,
    count: int,
    wake_word: str,
    say: Callable[[str], None],
    *,
    tries: int = 3,
    pause: Callable[[float], None] = time.sleep,
) -> list[Take]:
    """Prompt ``count`` times, record each take from ``source`` and cut the utterance out of it."""
    takes: list[Take] = []
    t0 = 0.0
    for i in range(1, count + 1):
        for attempt in range(1, tries + 1):
            say(f"[{i}/{count}] 3... ")
            _record(source, 1.0)
            say("2... ")
            lead = _record(source, 1.0)
            say(f"say {wake_word} now\n")
            audio = np.concatenate([lead, _record(source, RECORD_S)])
            spans = find_utterances(audio)
            if spans:
                start, end = max(spans, key=lambda s: float(np.sum(audio[s[0] : s[1]] ** 2)))
                lo, hi = max(0, start - int(CONTEXT_S * RATE)), min(audio.size, end + int(CONTEXT_S * RATE))
                if float(np.abs(audio[start:end]).max()) >= 0.99:
                    say("  (that was very loud, it may have clipped)\n")
                takes.append(
                    Take(
                        index=i,
                        samples=float_to_int16(audio[lo:hi]),
                        clip_start_s=t0 + lo / RATE,
                        speech_start_s=(start - lo) / RATE,
                        speech_end_s=(end - lo) / RATE,
                    )
                )
                break
            say("  heard nothing there; once more\n" if attempt < tries else "")
        else:
            raise AudioError(
                f"heard no speech from {source.description} in {tries} tries; check the microphone "
                "(`wakeword devices`, --device) and its level"
            )
        t0 += 2.0 + RECORD_S
        pause(0.3)
    return takes


# --------------------------------------------------------------------------- saving and the report


def save_takes(takes: list[Take], store: ClipStore, detector: Detector) -> list[Take]:
    """Write each take as WAV + JSON in the ``--save-clips`` layout (kind ``enrollment``)."""
    model = detector.models[0]
    settings = detector.debouncers[model.name].settings
    described = {"path": str(Path(model.path).resolve()), "sha256": file_sha256(Path(model.path))}
    saved = []
    for take in takes:
        sidecar = {
            "kind": "enrollment",
            "wake_word": model.name,
            "take": take.index,
            "score": round(take.peak, 4),
            "fire_level": round(take.fire_level, 4),
            "detected": take.detected,
            "stream_time_s": round(take.clip_start_s + take.peak_time_s, 3),
            "clip_start_s": round(take.clip_start_s, 3),
            "event_offset_s": round(take.peak_time_s, 3),
            "keyword_start_s": round(take.speech_start_s, 3),
            "keyword_end_s": round(take.speech_end_s, 3),
            "duration_s": round(take.samples.size / RATE, 3),
            "sample_rate": RATE,
            "model": described,
            "detector": asdict(settings),
        }
        clip = Clip("enrollment", model.name, take.samples, sidecar, datetime.now(UTC), f"{take.index:02d}")
        path = store.save(clip)
        saved.append(_replace(take, path=path))
    return saved


def table(takes: Sequence[Take], settings: DetectorSettings) -> list[str]:
    head = ("take", "peak score", f"detected (threshold {settings.threshold:g})", "file")
    rows = [head] + [
        (str(t.index), f"{t.peak:.3f}", "yes" if t.detected else "no", t.path.name if t.path else "")
        for t in takes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def open_out_store(out: Path) -> ClipStore:
    store = ClipStore(out)
    try:
        store.prepare()
    except OSError as exc:
        raise ConfigError(f"--out: cannot write takes to {out}: {exc.strerror or exc}") from exc
    return store


def run_enroll(
    detector: Detector,
    *,
    count: int,
    out: Path | None,
    input_spec: str | None,
    source_factory: Callable[[], AudioSource],
    stdout: TextIO,
    prompt: TextIO,
) -> int:
    """The whole command: collect takes (scripted or prompted), score, save, report. Returns the exit code."""
    if len(detector.models) != 1:
        raise ConfigError("enroll works on one model at a time; choose it with --model PATH")
    model = detector.models[0]
    store = open_out_store(out or default_out_dir(model.name))
    if input_spec is not None:
        audio = read_input(input_spec)
        takes = cut_takes(audio, count)
        where = "stdin" if input_spec == "-" else input_spec
        if not takes:
            raise AudioError(
                f"{where}: no utterance found (silent, or only clicks shorter than {MIN_SPEECH_S} s)"
            )
        if len(takes) < count:
            log.warning("%s: found only %d of %d utterances; scoring those", where, len(takes), count)
    else:
        source = source_factory()

        def say(text: str) -> None:
            prompt.write(text)
            prompt.flush()

        with source:
            say(f"Say '{model.name}' {count} times, once after each prompt, as you would to wake it.\n")
            takes = record_takes(source, count, model.name, say)
    takes = save_takes(score_takes(takes, detector), store, detector)
    settings = detector.debouncers[model.name].settings
    for line in table(takes, settings):
        stdout.write(line + "\n")
    stdout.write("\n")
    for line in recommend(takes, settings, model.metadata.detector.threshold, Path(model.path)):
        stdout.write(line + "\n")
    stdout.write(f"Takes saved in {store.root} (WAV + JSON per take).\n")
    stdout.flush()
    return 0
