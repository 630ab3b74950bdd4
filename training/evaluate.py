"""Evaluate what ships: the exported ONNX model through the runtime, streaming, on held-out voices.

Two passes over the same audio:

1. *Sweep*: the runtime's own pieces (the front end, ``WakeWordModel.run`` in
   ``frames_per_step`` blocks, exactly what ``Detector`` does inside) give per-frame
   probabilities once; the runtime ``Debouncer`` then turns them into detections for
   every candidate threshold. That gives the DET curve and picks the threshold.
2. *Shipped*: ``wakeword.Detector`` with the chosen threshold and the model's detector
   settings streams every clip chunk by chunk (80 ms chunks, like a microphone). All
   reported figures come from this pass; it must agree with the sweep at that threshold.

Validation voices are whole voices never used in training (the manifest's val/test split).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.augment import SAMPLE_RATE
from training.dataset import (
    CONFUSABLE,
    EVAL_SPLITS,
    POSITIVE,
    REAL_POSITIVE_EVAL,
    REAL_SPEECH,
    TRAIN_SPLITS,
    ClipFactory,
    DatasetConfig,
    Sources,
    load_sources,
)
from training.voices import espeak_accent
from wakeword.detector import Debouncer, Detection
from wakeword.engine import Detector
from wakeword.features import FeatureConfig
from wakeword.frontend import compute_frames
from wakeword.metadata import DetectorSettings
from wakeword.model import WakeWordModel
from wakeword.state import RefreshingState, refresh_schedule

log = logging.getLogger(__name__)

CLEAN = math.inf  # SNR "bin" of clips with only the microphone's noise floor


@dataclass(frozen=True)
class EvalConfig:
    negative_hours: float = 3.0
    stream_s: float = 120.0
    # Ordinary negative streams: utterances are sentences / real voices / confusable words in these
    # proportions (confusables are measured on their own below, so they are rare here, as in life) ...
    stream_kind_weights: tuple[float, float, float] = (0.85, 0.10, 0.05)
    # ... plus a stress set where a third of all utterances are confusables (reported separately).
    dense_hours: float = 1.0
    max_positives: int = 1500
    positive_repeats: int = 2  # each held-out positive at this many SNRs
    snr_bins_db: tuple[float, ...] = (CLEAN, 20.0, 10.0, 5.0, 0.0)
    target_min_snr_db: float = 5.0  # the FRR target counts clips at or above this SNR
    lead_s: tuple[float, float] = (0.8, 2.5)  # audio before the keyword
    accept_after_s: float = 1.5  # a detection up to this long after the keyword end counts
    max_confusables: int = 1500
    # Positives of voices the model WAS trained on, in fresh mixes composed like the held-out ones:
    # if these miss about as often, the misses come from the conditions (noise, room, level), not
    # from unseen voices. Reported apart; they never count in the held-out figures.
    training_voice_positives: int = 600
    max_real: int = 2000
    chunk_samples: int = 1280  # 80 ms, what a microphone callback delivers
    target_fa_per_hour: float = 0.5
    target_confusable_fa_rate: float = 0.03
    patience_options: tuple[int, ...] = (3, 6, 10)  # frames above threshold before firing
    fa_points: tuple[float, ...] = (0.1, 0.5, 1.0)
    thresholds: tuple[float, ...] = tuple(
        sorted(
            {round(float(t), 4) for t in np.linspace(0.05, 0.95, 19)}
            | {0.96, 0.97, 0.98, 0.985, 0.99, 0.993, 0.995, 0.997, 0.998, 0.999, 0.9995, 0.9999}
        )
    )
    seed: int = 4242
    dataset: DatasetConfig = field(default_factory=DatasetConfig)


@dataclass
class Item:
    """One evaluation stream: audio (int16) and what it contains."""

    kind: str  # positive | negative_stream | confusable | real_speech | real_positive
    audio: np.ndarray
    start_s: float | None = None  # keyword start/end (synthetic positives)
    end_s: float | None = None
    snr_db: float | None = None
    engine: str = ""
    group: str = ""  # voice_group() of a synthetic positive
    background: str = ""  # what was mixed under a synthetic positive (dataset.BACKGROUND_KINDS, or "none")
    probs: np.ndarray | None = None

    @property
    def hours(self) -> float:
        return len(self.audio) / SAMPLE_RATE / 3600.0


def voice_group(row: dict) -> str:
    """What a reader can act on: the espeak-ng accent (one is held out whole), else the engine."""
    engine = row.get("engine", "")
    accent = espeak_accent(row.get("voice", "")) if engine == "espeak-ng" else None
    return f"espeak-ng {accent}" if accent else engine


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _padded(x: np.ndarray, rng: np.random.Generator, lead_s: float, tail_s: float) -> np.ndarray:
    """A recording with quiet microphone noise before and after it (so the detector can react)."""
    lead = rng.normal(0, 3e-4, int(lead_s * SAMPLE_RATE)).astype(np.float32)
    tail = rng.normal(0, 3e-4, int(tail_s * SAMPLE_RATE)).astype(np.float32)
    return np.concatenate([lead, x, tail])


def _positive_items(
    factory: ClipFactory,
    rng: np.random.Generator,
    limit: int,
    repeats: int,
    config: EvalConfig,
    kind: str,
) -> list[Item]:
    """Each positive recording of the factory's sources at ``repeats`` SNRs (cycling the bins),
    placed after a lead-in."""
    sources = factory.sources
    positives = sources.rows.get(POSITIVE, [])
    order = np.tile(rng.permutation(len(positives)), repeats)[:limit]
    items = []
    for i, idx in enumerate(tqdm(order, desc=f"eval {kind}", mininterval=5)):
        word = sources.audio(positives[idx])
        word = word / max(float(np.sqrt(np.mean(word**2))), 1e-6) * 0.1
        snr = config.snr_bins_db[(i + i // len(positives)) % len(config.snr_bins_db)]
        lead = int(rng.uniform(*config.lead_s) * SAMPLE_RATE)
        end = lead + len(word)
        n = end + int((config.accept_after_s + 0.1) * SAMPLE_RATE)
        clip = factory.compose(n, rng, word, end, True, snr_db=snr)
        start_s, end_s = (end - len(word)) / SAMPLE_RATE, end / SAMPLE_RATE
        row = positives[idx]
        group, background = voice_group(row), clip.background or "none"
        items.append(
            Item(kind, _int16(clip.audio), start_s, end_s, snr, row.get("engine", ""), group, background)
        )
    return items


def build_items(manifest: Path, config: EvalConfig) -> list[Item]:
    """Held-out positives (by SNR), >= negative_hours of negative streams, confusables, real voices;
    then positives of *training* voices, composed the same way (see EvalConfig.training_voice_positives)."""
    sources = load_sources(manifest, EVAL_SPLITS)
    factory = ClipFactory(sources, config.dataset, FeatureConfig())
    rng = np.random.default_rng(config.seed)
    items = _positive_items(factory, rng, config.max_positives, config.positive_repeats, config, "positive")
    n_streams = max(1, math.ceil(config.negative_hours * 3600 / config.stream_s))
    n = int(config.stream_s * SAMPLE_RATE)
    for _ in tqdm(range(n_streams), desc="eval negative streams", mininterval=5):
        clip = factory.draw_negative_stream(n, rng, kind_weights=config.stream_kind_weights)
        items.append(Item("negative_stream", _int16(clip.audio)))
    for _ in tqdm(range(math.ceil(config.dense_hours * 3600 / config.stream_s)), desc="dense streams"):
        items.append(Item("dense_stream", _int16(factory.draw_negative_stream(n, rng).audio)))
    for row in sources.rows.get(CONFUSABLE, [])[: config.max_confusables]:
        word = sources.audio(row)
        end = int(rng.uniform(*config.lead_s) * SAMPLE_RATE) + len(word)
        n = end + int((config.accept_after_s + 0.1) * SAMPLE_RATE)
        word = word / max(float(np.sqrt(np.mean(word**2))), 1e-6) * 0.1
        clip = factory.compose(n, rng, word, end, False, snr_db=20.0)
        items.append(Item("confusable", _int16(clip.audio)))
    for kind, item_kind in ((REAL_SPEECH, "real_speech"), (REAL_POSITIVE_EVAL, "real_positive")):
        for row in sources.rows.get(kind, [])[: config.max_real]:
            items.append(
                Item(item_kind, _int16(_padded(sources.audio(row), rng, 0.5, config.accept_after_s)))
            )
    if not sources.rows.get(REAL_SPEECH) and not sources.rows.get(REAL_POSITIVE_EVAL):
        log.warning("no real-speech recordings in the evaluation split: real-voice figures skipped")
    if config.training_voice_positives:  # own generator: the held-out items above never move
        trained = load_sources(manifest, TRAIN_SPLITS, (POSITIVE,)).rows.get(POSITIVE, [])
        if trained:
            # the same held-out backgrounds and context speech: only the voices differ
            mixed = Sources({**sources.rows, POSITIVE: trained}, sources.root)
            factory = ClipFactory(mixed, config.dataset, FeatureConfig())
            rng = np.random.default_rng([config.seed, 1])
            items += _positive_items(
                factory, rng, config.training_voice_positives, 1, config, "training_voice_positive"
            )
    return items


def stream_probabilities(
    model: WakeWordModel, audio: np.ndarray, settings: DetectorSettings | None = None
) -> np.ndarray:
    """Per-frame probabilities exactly as Detector computes them (frames_per_step blocks, the hidden
    state refreshed as ``settings`` say: the model's own by default)."""
    frames = compute_frames(audio, model.features)  # equal to streaming (tests/test_embedding.py)
    step = model.metadata.frames_per_step
    state = RefreshingState(
        model, refresh_schedule(settings or model.metadata.detector, model.features.frames_per_second)
    )
    out = np.zeros(len(frames), dtype=np.float32)
    for start in range(0, len(frames), step):
        out[start : start + step] = state.run(frames[start : start + step])
    return out


def debounce(model: WakeWordModel, settings: DetectorSettings, probs: np.ndarray) -> list[Detection]:
    """The runtime Debouncer over one item's cached probabilities: what the daemon would fire."""
    cfg = model.features
    deb = Debouncer(
        model.name,
        settings,
        cfg.frames_per_second,
        cfg.hop_samples / cfg.sample_rate,
        cfg.window_samples / cfg.sample_rate,
    )
    return deb.process(probs)


def positive_hit(item: Item, detections: list[Detection], accept_after_s: float) -> Detection | None:
    """The first detection from the keyword's start to ``accept_after_s`` after its end; None is a miss."""
    for d in detections:
        if item.start_s is not None and item.start_s <= d.time_s <= item.end_s + accept_after_s:
            return d
    return None


def score(items: list[Item], detections: list[list[Detection]], config: EvalConfig) -> dict:
    """All figures from per-item detections."""
    out: dict = {}
    pos = [(it, det) for it, det in zip(items, detections, strict=True) if it.kind == "positive"]
    if pos:
        hits = [positive_hit(it, det, config.accept_after_s) for it, det in pos]
        latencies = [h.time_s - it.end_s for (it, _), h in zip(pos, hits, strict=True) if h is not None]
        at_target = [
            (it, h is None)
            for (it, _), h in zip(pos, hits, strict=True)
            if it.snr_db >= config.target_min_snr_db
        ]
        out["frr_snr_ge_5db"] = _rate([missed for _, missed in at_target])
        out["frr_all"] = _rate([h is None for h in hits])
        out["frr_by_snr"] = {
            snr_name(b): _rate([h is None for (it, _), h in zip(pos, hits, strict=True) if it.snr_db == b])
            for b in config.snr_bins_db
        }
        out["frr_snr_ge_5db_by_engine"] = {
            e: _rate([missed for it, missed in at_target if it.engine == e])
            for e in sorted({it.engine for it, _ in pos})
        }
        by_group: dict[str, list[bool]] = {}
        for it, missed in at_target:
            by_group.setdefault(it.group, []).append(missed)
        out["frr_snr_ge_5db_by_voice_group"] = {
            g: {"frr": _rate(flags), "clips": len(flags)} for g, flags in sorted(by_group.items())
        }
        out["frr_snr_ge_5db_by_background"] = _frr_by_background(at_target, config)
        out["latency_median_ms"] = round(float(np.median(latencies)) * 1000, 1) if latencies else None
        out["latency_p95_ms"] = round(float(np.percentile(latencies, 95)) * 1000, 1) if latencies else None
        out["positives"] = len(pos)
        out["early_fires_on_positive_clips"] = sum(1 for it, det in pos for d in det if d.time_s < it.start_s)
    neg = [(it, det) for it, det in zip(items, detections, strict=True) if it.kind == "negative_stream"]
    hours = sum(it.hours for it, _ in neg)
    out["negative_hours"] = round(hours, 3)
    out["false_accepts"] = sum(len(det) for _, det in neg)
    out["fa_per_hour"] = round(out["false_accepts"] / hours, 3) if hours else None
    dense = [(it, det) for it, det in zip(items, detections, strict=True) if it.kind == "dense_stream"]
    dense_hours = sum(it.hours for it, _ in dense)
    out["confusable_dense_hours"] = round(dense_hours, 3)
    out["confusable_dense_fa_per_hour"] = (
        round(sum(len(det) for _, det in dense) / dense_hours, 3) if dense_hours else None
    )
    for kind, key in (("confusable", "confusable_fa_rate"), ("real_speech", "real_speech_fa_rate")):
        group = [len(det) > 0 for it, det in zip(items, detections, strict=True) if it.kind == kind]
        out[key] = _rate(group)
        out[key.replace("_rate", "_clips")] = len(group)
    real_pos = [
        len(det) == 0 for it, det in zip(items, detections, strict=True) if it.kind == "real_positive"
    ]
    out["real_positive_frr"] = _rate(real_pos)
    trained = [
        positive_hit(it, det, config.accept_after_s) is None
        for it, det in zip(items, detections, strict=True)
        if it.kind == "training_voice_positive" and it.snr_db >= config.target_min_snr_db
    ]
    if trained:
        out["training_voices_frr_snr_ge_5db"] = _rate(trained)
        out["training_voices_clips_snr_ge_5db"] = len(trained)
    out["real_positive_clips"] = len(real_pos)
    return out


def _frr_by_background(at_target: list[tuple[Item, bool]], config: EvalConfig) -> dict:
    """Misses per background kind, overall and per SNR bin: says whether noise, music or
    competing speech is what the model cannot hear through."""
    out: dict = {}
    for kind in sorted({it.background for it, _ in at_target}):
        mine = [(it, missed) for it, missed in at_target if it.background == kind]
        by_snr = {
            snr_name(b): _rate([missed for it, missed in mine if it.snr_db == b])
            for b in config.snr_bins_db
            if any(it.snr_db == b for it, _ in mine)
        }
        out[kind] = {"frr": _rate([missed for _, missed in mine]), "clips": len(mine), "by_snr": by_snr}
    return out


def _rate(flags: list[bool]) -> float | None:
    return round(float(np.mean(flags)), 4) if flags else None


def snr_name(snr: float) -> str:
    return "clean" if math.isinf(snr) else f"{snr:g}dB"


def sweep(model: WakeWordModel, items: list[Item], base: DetectorSettings, config: EvalConfig) -> list[dict]:
    """DET points for every (patience, threshold), from cached probabilities + the runtime Debouncer."""
    for item in tqdm(items, desc="probabilities", mininterval=5):
        if item.probs is None:
            item.probs = stream_probabilities(model, item.audio)
    points = []
    grid = [(p, t) for p in config.patience_options for t in config.thresholds]
    for patience, threshold in tqdm(grid, desc="threshold sweep", mininterval=5):
        settings = replace(base, threshold=threshold, patience_frames=patience)
        detections = [debounce(model, settings, item.probs) for item in items]
        points.append(
            {"threshold": threshold, "patience_frames": patience, **score(items, detections, config)}
        )
    return points


def choose_threshold(points: list[dict], target_fa_per_hour: float) -> dict:
    """Lowest threshold whose FA/hour meets the target (most sensitive that is still quiet enough)."""
    ok = [p for p in points if p["fa_per_hour"] is not None and p["fa_per_hour"] <= target_fa_per_hour]
    if ok:
        return min(ok, key=lambda p: p["threshold"])
    return min(points, key=lambda p: (p["fa_per_hour"], -p["threshold"]))


def choose_operating_point(points: list[dict], target_fa_per_hour: float, max_confusable: float) -> dict:
    """The default: fewest misses (SNR >= 5 dB) among points that meet both false-accept targets
    (FA/hour and the confusable rate); if none does, the FA/hour rule alone."""
    ok = [
        p
        for p in points
        if p["fa_per_hour"] is not None
        and p["fa_per_hour"] <= target_fa_per_hour
        and (p.get("confusable_fa_rate") or 0.0) <= max_confusable
        and p.get("frr_snr_ge_5db") is not None
    ]
    if ok:
        return min(ok, key=lambda p: (p["frr_snr_ge_5db"], p["fa_per_hour"], -p["threshold"]))
    return choose_threshold(points, target_fa_per_hour)


def run_shipped(
    model_path: Path, items: list[Item], settings: DetectorSettings, chunk: int
) -> list[list[Detection]]:
    """The shipped runtime, chunk by chunk, with the chosen detector settings."""
    model = WakeWordModel.load(model_path)
    detector = Detector([model], settings={model.name: settings})
    results = []
    for item in tqdm(items, desc="streaming (shipped detector)", mininterval=5):
        detector.reset()
        found: list[Detection] = []
        for start in range(0, len(item.audio), chunk):
            found.extend(detector.process(item.audio[start : start + chunk]))
        found.extend(detector.flush())
        results.append(found)
    return results


def plot_det(points: list[dict], chosen: dict, hours: float, path: Path, title: str) -> None:
    """FRR against FA/hour (log x) for the chosen patience, with the default operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    floor = 0.5 / max(hours, 1e-6)  # zero false accepts drawn at half a count
    top = floor
    for key, label in (("frr_snr_ge_5db", "SNR >= 5 dB"), ("frr_all", "all SNRs (0-20 dB, clean)")):
        xs = [max(p["fa_per_hour"], floor) for p in points if p.get(key) is not None]
        ys = [p[key] * 100 for p in points if p.get(key) is not None]
        top = max([top, *xs])
        ax.plot(xs, ys, marker=".", label=label)
    ax.scatter([max(chosen["fa_per_hour"], floor)], [chosen["frr_snr_ge_5db"] * 100], color="red", zorder=5,
               label=f"default threshold {chosen['threshold']}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(floor / 1.5, max(top * 1.5, floor * 100))
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"false accepts per hour ({hours:.1f} h of negatives; none drawn at {floor:.2g})")
    ax.set_ylabel("false-reject rate (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: The fields of a sweep point that the card reports, per section.
OPERATING_POINT_KEYS = (
    "threshold",
    "fa_per_hour",
    "frr_snr_ge_5db",
    "frr_all",
    "confusable_fa_rate",
    "confusable_dense_fa_per_hour",
    "real_positive_frr",
    "latency_median_ms",
)
DET_POINT_KEYS = (
    "threshold",
    "fa_per_hour",
    "frr_snr_ge_5db",
    "frr_all",
    "confusable_fa_rate",
    "real_speech_fa_rate",
    "real_positive_frr",
)


def _pick(point: dict, keys: tuple[str, ...]) -> dict:
    """The named fields of a sweep point (None where a figure was not measured)."""
    return {k: point.get(k) for k in keys}


def evaluate(model_path: Path, manifest: Path, config: EvalConfig) -> dict:
    """Full evaluation; returns the figures for the model card (threshold included; plot with plot_det)."""
    model = WakeWordModel.load(model_path)
    items = build_items(manifest, config)
    sources = load_sources(manifest, EVAL_SPLITS)
    distinct = {
        kind: round(sum(r["duration_s"] for r in sources.rows.get(kind, [])) / 3600, 3)
        for kind in ("speech", "music", "noise", "confusable", "real_speech")
    }
    base = model.metadata.detector
    all_points = sweep(model, items, base, config)
    chosen = choose_operating_point(all_points, config.target_fa_per_hour, config.target_confusable_fa_rate)
    settings = replace(base, threshold=chosen["threshold"], patience_frames=chosen["patience_frames"])
    shipped = score(items, run_shipped(model_path, items, settings, config.chunk_samples), config)
    mismatch = {k: (shipped[k], chosen[k]) for k in shipped if shipped[k] != chosen.get(k)}
    if mismatch:
        log.warning("shipped detector differs from the sweep at the chosen threshold: %s", mismatch)
    points = [p for p in all_points if p["patience_frames"] == chosen["patience_frames"]]
    at_fa = {}
    for fa in config.fa_points:
        p = choose_threshold(points, fa)
        met = p["fa_per_hour"] <= fa
        at_fa[f"{fa:g}"] = {
            "threshold": p["threshold"],
            "fa_per_hour": p["fa_per_hour"],
            "frr_snr_ge_5db": p["frr_snr_ge_5db"] if met else None,
            "frr_all": p["frr_all"] if met else None,
            "confusable_fa_rate": p["confusable_fa_rate"],
            "frr_by_snr": p.get("frr_by_snr"),
            "reachable": met,
        }
    alternatives = []
    for patience in config.patience_options:
        subset = [p for p in all_points if p["patience_frames"] == patience]
        for rule, p in (
            ("fa_only", choose_threshold(subset, config.target_fa_per_hour)),
            (
                "fa_and_confusable",
                choose_operating_point(subset, config.target_fa_per_hour, config.target_confusable_fa_rate),
            ),
        ):
            alternatives.append({"rule": rule, "patience_frames": patience} | _pick(p, OPERATING_POINT_KEYS))
    return {
        "threshold": chosen["threshold"],
        "chosen_point": _pick(chosen, ("threshold", "patience_frames", "fa_per_hour", "frr_snr_ge_5db")),
        "detector": dict(settings.__dict__),
        "operating_points": alternatives,
        "shipped": shipped,
        "frr_at_fa_per_hour": at_fa,
        "det_points": [_pick(p, DET_POINT_KEYS) for p in points],
        "sweep_matches_shipped": not mismatch,
        "held_out_source_hours": distinct,
    }
