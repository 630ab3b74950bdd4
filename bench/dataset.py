"""The evaluation audio every engine hears: built on disk from training's data, never downloaded.

Sources, in order of preference:
* ``--eval-manifest``: a ready evaluation set in this module's format (JSON lines:
  ``path``, ``kind`` positive|confusable|negative, ``keyword_start_s``/``keyword_end_s``,
  ``snr_db``, ``padded``) streamed as is;
* the training data manifest (``training/work/espresso/data/manifest.jsonl``): the
  evaluation audio is built by ``training.evaluate.build_items``, the very items the
  model card's figures come from (validation voices never trained on, positives mixed
  at several SNRs with a known keyword end, negative streams of speech, music and
  noise, confusables), written once as WAVs into the bench cache keyed by the manifest;
* a manifest of bare clips without keyword times (an older dev set): speech is
  located by energy (10 ms frames above -35 dB of the loudest frame), and clips are
  padded with quiet dither (about -80 dBFS, 1.0 s before, 2.0 s after);
* always, the real people of ``../shared/data/real-speech/`` (other wake words, so
  negatives), padded 0.5 s before and 1.5 s after; files in the manifest's training
  split (our model was trained on them as negatives) are marked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import REPO_ROOT, SAMPLE_RATE, BenchSettings, dither, load_audio, write_wav

log = logging.getLogger(__name__)

MANIFEST_CANDIDATES = (
    "training/work/espresso/eval/manifest.jsonl",
    "training/work/espresso/validation/manifest.jsonl",
    "training/work/espresso/data/manifest.jsonl",
    "training/work/espresso/manifest.jsonl",
    "training/work/dev/data/manifest.jsonl",
)
VAL_SPLITS = {"val", "valid", "validation", "test", "eval"}
LEAD_S = 1.0
TAIL_S = 2.0
REAL_LEAD_S = 0.5
REAL_TAIL_S = 1.5
FIRE_WINDOW_AFTER_END_S = 1.5  # EVALUATION.md: a positive counts if detected by keyword end + 1.5 s
START_KEYS = ("keyword_start_s", "kw_start_s", "word_start_s", "speech_start_s")
END_KEYS = ("keyword_end_s", "kw_end_s", "word_end_s", "speech_end_s")


@dataclass(frozen=True)
class Clip:
    """One evaluation clip as streamed: ``lead_s`` of dither, the file, ``tail_s`` of dither."""

    path: str
    kind: str  # positive | confusable | negative | real_speech
    duration_s: float  # the file alone
    lead_s: float = 0.0
    tail_s: float = 0.0
    keyword_start_s: float | None = None  # in stream time (padding included)
    keyword_end_s: float | None = None
    snr_db: float | None = None
    group: str = ""  # real-speech word, negative sub-kind, voice...
    in_training: bool = False  # real speech the model was trained on (train split of the manifest)

    @property
    def seed(self) -> int:
        return zlib.crc32(self.path.encode())

    def key(self) -> str:
        """Identifies the exact audio an engine hears (content hash and padding), for result caches."""
        digest = hashlib.sha1(Path(self.path).read_bytes()).hexdigest()[:20]
        return f"{digest}|{self.lead_s:.3f}|{self.tail_s:.3f}"

    def stream_samples(self) -> np.ndarray:
        audio = load_audio(self.path)
        lead = dither(int(self.lead_s * SAMPLE_RATE), self.seed)
        tail = dither(int(self.tail_s * SAMPLE_RATE), self.seed + 1)
        return np.concatenate([lead, audio, tail]) if lead.size or tail.size else audio

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class EvalSet:
    clips: list[Clip]
    source: str
    notes: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Clip]:
        return [c for c in self.clips if c.kind == kind]

    def hours(self, kind: str) -> float:
        return sum(c.duration_s + c.lead_s + c.tail_s for c in self.of(kind)) / 3600.0

    def summary(self) -> dict:
        kinds = ("positive", "confusable", "negative", "real_speech")
        return {
            "source": self.source,
            "notes": self.notes,
            "counts": {k: len(self.of(k)) for k in kinds},
            "hours": {k: round(self.hours(k), 4) for k in kinds},
        }


def speech_bounds(samples: np.ndarray, floor_db: float = -35.0) -> tuple[float, float]:
    """(start_s, end_s) of the speech in a clip: 10 ms frames above floor_db of the loudest frame."""
    hop = SAMPLE_RATE // 100
    n = samples.size // hop
    if n == 0:
        return 0.0, samples.size / SAMPLE_RATE
    frames = samples[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt((frames**2).mean(axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    return loud[0] * hop / SAMPLE_RATE, (loud[-1] + 1) * hop / SAMPLE_RATE


def find_manifest(settings: BenchSettings) -> Path | None:
    if settings.manifest is not None:
        return settings.manifest
    for rel in MANIFEST_CANDIDATES:
        path = REPO_ROOT / rel
        if path.is_file():
            return path
    return None


def _first(record: dict, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if record.get(key) is not None:
            return float(record[key])
    return None


def _positive_clip(path: Path, record: dict, duration_s: float) -> Clip:
    start, end = _first(record, START_KEYS), _first(record, END_KEYS)
    if end is not None and record.get("padded"):
        return Clip(str(path), "positive", duration_s, 0.0, 0.0, start, end, record.get("snr_db"), "")
    if end is None:
        start, end = speech_bounds(load_audio(path))
        lead, tail = LEAD_S, TAIL_S
    else:
        start = end - 0.6 if start is None else start
        lead = 0.0 if start >= 0.3 else LEAD_S
        tail = max(0.0, end + FIRE_WINDOW_AFTER_END_S + 0.2 - duration_s)
    return Clip(
        str(path),
        "positive",
        duration_s,
        lead,
        tail,
        lead + start,
        lead + end,
        record.get("snr_db"),
        str(record.get("voice", "")),
    )


def _read_manifest(manifest: Path) -> tuple[list[dict], list[dict]]:
    """(validation records, training records); a manifest without splits is all validation."""
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    has_split = any("split" in r for r in records)
    val = [r for r in records if not has_split or str(r.get("split", "")).lower() in VAL_SPLITS]
    train = [r for r in records if has_split and str(r.get("split", "")).lower() not in VAL_SPLITS]
    return val, train


def _duration(record: dict, path: Path) -> float:
    if record.get("duration_s"):
        return float(record["duration_s"])
    import soundfile as sf

    return sf.info(str(path)).duration


def _take(clips: list[Clip], limit: int | None, seed: int = 7) -> list[Clip]:
    """A deterministic spread-out subset (seeded shuffle, then sorted back)."""
    if limit is None or len(clips) <= limit:
        return clips
    order = np.random.default_rng(seed).permutation(len(clips))[:limit]
    return [clips[i] for i in sorted(order)]


def _take_hours(clips: list[Clip], hours: float, seed: int = 11) -> list[Clip]:
    order = np.random.default_rng(seed).permutation(len(clips))
    chosen, total = [], 0.0
    for i in order:
        if total >= hours * 3600:
            break
        chosen.append(i)
        total += clips[i].duration_s
    return [clips[i] for i in sorted(chosen)]


def build_from_training(manifest: Path, settings: BenchSettings) -> Path:
    """Write training.evaluate's items for this manifest as WAVs + a bench manifest (cached)."""
    from training.evaluate import EvalConfig, build_items

    neg_s = settings.neg_hours * 3600
    config = EvalConfig(
        negative_hours=settings.neg_hours,
        stream_s=min(120.0, max(5.0, neg_s)),
        max_positives=settings.max_positives or 1500,
        max_confusables=settings.max_confusables or 1500,
        max_real=0,  # real people come from the shared folder, all of them, below
    )
    digest = hashlib.sha256(manifest.read_bytes() + repr(config).encode()).hexdigest()[:16]
    folder = settings.cache_dir / f"evalset-{digest}"
    out = folder / "manifest.jsonl"
    if out.is_file():
        return out
    log.info("building the evaluation audio with training.evaluate.build_items (%s)", folder)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    kinds = {"positive": "positive", "negative_stream": "negative", "confusable": "confusable"}
    lines = []
    for i, item in enumerate(build_items(manifest, config)):
        if item.kind not in kinds:
            continue
        name = f"{kinds[item.kind]}-{i:05d}.wav"
        write_wav(tmp / name, item.audio)
        snr = item.snr_db
        lines.append(
            json.dumps(
                {
                    "path": name,
                    "kind": kinds[item.kind],
                    "keyword_start_s": item.start_s,
                    "keyword_end_s": item.end_s,
                    "snr_db": None if snr is None else (snr if math.isfinite(snr) else "clean"),
                    "duration_s": item.audio.size / SAMPLE_RATE,
                    "padded": True,
                    "split": "val",
                }
            )
        )
    (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (tmp / "source.json").write_text(json.dumps({"manifest": str(manifest), "config": repr(config)}))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return out


def load_eval_set(settings: BenchSettings) -> EvalSet:
    """Everything the accuracy and latency sections feed to every engine."""
    notes: list[str] = []
    clips: list[Clip] = []
    trained_real: set[str] = set()
    training_manifest = find_manifest(settings)
    if training_manifest is not None:
        _, train = _read_manifest(training_manifest)
        trained_real = {Path(r["path"]).stem for r in train if r.get("kind") == "real_speech"}
    manifest = settings.eval_manifest
    source = "none"
    if manifest is None and training_manifest is not None:
        try:
            manifest = build_from_training(training_manifest, settings)
            built = datetime.fromtimestamp(manifest.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
            source = (
                f"training.evaluate.build_items({_rel(training_manifest)}), validation split, built {built}"
            )
            notes.append("training's dense confusable streams are left out (PocketSphinx reruns each clip)")
        except Exception as exc:  # training code absent/older: stream the manifest's clips directly
            notes.append(
                f"training.evaluate could not build the set ({type(exc).__name__}: {exc}); raw clips used"
            )
            manifest = training_manifest
    if manifest is None:
        notes.append("no evaluation manifest from training/ found: only real-speech negatives")
    else:
        source = source if source != "none" else _rel(manifest)
        clips += _clips_from_manifest(manifest, settings, notes)
    clips += _real_speech(settings, trained_real, notes)
    return EvalSet(clips, source, notes)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def _clips_from_manifest(manifest: Path, settings: BenchSettings, notes: list[str]) -> list[Clip]:
    val, _ = _read_manifest(manifest)
    by_kind: dict[str, list[Clip]] = {"positive": [], "confusable": [], "negative": []}
    for record in val:
        kind = str(record.get("kind", "negative"))
        if kind.startswith("real_"):
            continue  # real people are taken from the shared folder, all of them
        path = Path(record["path"])
        path = path if path.is_absolute() else manifest.parent / path
        if not path.is_file():
            continue
        duration = _duration(record, path)
        if record.get("snr_db") == "clean":
            record["snr_db"] = math.inf
        if kind == "positive":
            by_kind["positive"].append(_positive_clip(path, record, duration))
        elif kind == "confusable":
            pad = (0.0, 0.0) if record.get("padded") else (LEAD_S, TAIL_S)
            by_kind["confusable"].append(
                Clip(str(path), "confusable", duration, *pad, group=str(record.get("text", "")))
            )
        else:
            by_kind["negative"].append(Clip(str(path), "negative", duration, group=kind))
    if not by_kind["positive"]:
        notes.append(f"{_rel(manifest)} has no validation positives")
    return (
        _take(by_kind["positive"], settings.max_positives)
        + _take(by_kind["confusable"], settings.max_confusables)
        + _take_hours(by_kind["negative"], settings.neg_hours)
    )


def _real_speech(settings: BenchSettings, trained: set[str], notes: list[str]) -> list[Clip]:
    folder = settings.real_speech_dir
    if folder is None or not folder.is_dir():
        notes.append(f"real-speech folder {folder} is absent: false accepts on real voices not measured")
        return []
    import soundfile as sf

    files = sorted(p for p in folder.glob("*/*") if p.suffix.lower() in {".wav", ".flac"})
    clips = []
    for path in files:
        try:
            duration = sf.info(str(path)).duration
        except RuntimeError:
            continue
        clips.append(
            Clip(
                str(path),
                "real_speech",
                duration,
                REAL_LEAD_S,
                REAL_TAIL_S,
                group=path.parent.name,
                in_training=path.stem in trained,
            )
        )
    if trained:
        notes.append(
            f"{sum(c.in_training for c in clips)} real-speech files are in the training split "
            "of the manifest (used as negatives in our training)"
        )
    return _take(clips, settings.max_real_speech)
