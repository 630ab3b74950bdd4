"""Widened 1-label datasets: clips of a few seconds with a per-frame target.

A positive clip has the keyword somewhere in a stream of background and other
speech, with its end known to the sample. The target is 1 for ``label_frames``
frames starting at the first frame that contains the keyword end, 0 everywhere
else; clips without the keyword (speech, confusables, music, noise) are 0
throughout. A causal model can only be right by firing after it has heard the
whole word, which is exactly the behaviour the detector wants.

Features come from :func:`wakeword.frontend.compute_frames` (the runtime's own
front end, log-mel or speech embedding) and are cached as ``.npy`` under a key that hashes the feature
config, the dataset config and the manifest, so a change to any of them builds
a new set and a rerun with the same inputs costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import multiprocessing.pool
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from training import augment
from training.augment import SAMPLE_RATE, AugmentConfig
from wakeword.embedding import EmbeddingConfig
from wakeword.features import FeatureConfig
from wakeword.frontend import FrontEndConfig, compute_frames, frame_count

log = logging.getLogger(__name__)

POSITIVE = "positive"
CONFUSABLE = "confusable"
SPEECH = "speech"
REAL_SPEECH = "real_speech"
MUSIC = "music"
NOISE = "noise"
REAL_POSITIVE_EVAL = "real_positive_eval"
TRAIN_SPLITS = ("train",)
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class ClipMix:
    """Share of each kind of short clip (normalised when used)."""

    positive: float = 0.30
    confusable: float = 0.14
    truncated: float = 0.04  # the keyword cut short ("espre..."): must not fire before the end
    speech: float = 0.28
    real_speech: float = 0.09
    background: float = 0.15  # music, noise, babble or near-silence only

    def weights(self) -> dict[str, float]:
        raw = asdict(self)
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()}


@dataclass(frozen=True)
class DatasetConfig:
    """How clips are drawn. Everything that changes the arrays is in here (and so in the cache key)."""

    clip_s: float = 3.0
    long_clip_s: float = 12.0
    n_short: int = 24000
    n_long: int = 1500
    n_val: int = 1500
    long_positive_p: float = 0.3  # long clips that end with a keyword after seconds of speech
    # Long clips with the keyword said 2-5 times by different voices, each one labelled: without them
    # no clip ever shows the model a keyword after a keyword, and a daemon hearing people one after
    # another with one carried state missed far more of them (real alexa, one stream: 16.2% vs 6.0%)
    repeat_positive_p: float = 0.0
    repeat_count: tuple[int, int] = (2, 5)  # keywords per repeat clip, inclusive
    repeat_gap_s: tuple[float, float] = (0.45, 4.0)  # from one keyword's end to the next one's start
    label_frames: int = 40  # width of the 1-run after the keyword end (see the model card)
    ignore_before_frames: int = 8  # loss mask on the word's last frames: ambiguous, not wrong
    ignore_after_frames: int = 15  # loss mask after the 1-run: firing late there is harmless
    min_end_margin_s: float = 0.1  # keyword end this far before the 1-run would leave the clip
    context_speech_p: float = 0.35  # other speech before the keyword
    trailing_speech_p: float = 0.25  # other speech right after it ("espresso, please")
    # espeak-ng is most of the voices but the least human-sounding (formant synthesis): cap its share of
    # positive draws so neural/diphone voices, closer to real people, are not drowned out (None: uniform)
    espeak_positive_share: float | None = 0.45
    # Experiments only (training.frontend_experiment --positive-share): fixed shares of positive draws
    # per named engine, the rest uniform over the other engines' clips; replaces espeak_positive_share
    # when set. To tell which voices carry over to real people without synthesising new clips.
    positive_engine_shares: tuple[tuple[str, float], ...] = ()
    mix: ClipMix = field(default_factory=ClipMix)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 1234

    def key(self, features: FrontEndConfig, manifest_digest: str, extra: str = "") -> str:
        blob = json.dumps(
            {
                "dataset": asdict(self),
                "features": features.to_dict(),
                "manifest": manifest_digest,
                "extra": extra,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- labels


def keyword_end_frame(end_sample: int, config: FrontEndConfig) -> int:
    """First frame whose window contains the keyword's last sample (frame t covers [t*hop, t*hop+win))."""
    return max(0, math.ceil((end_sample - config.window_samples) / config.hop_samples))


def frame_targets(
    n_frames: int,
    end_samples: Sequence[int],
    config: FrontEndConfig,
    label_frames: int,
    ignore_before: int = 0,
    ignore_after: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, loss mask) for one clip: 1 for ``label_frames`` frames from each keyword end, else 0.

    The frames each side of a run are left out of the loss; a 1-frame always counts, even where a
    neighbouring keyword's ignored frames overlap it."""
    labels = np.zeros(n_frames, dtype=np.uint8)
    mask = np.ones(n_frames, dtype=np.uint8)
    for end_sample in end_samples:
        start = keyword_end_frame(end_sample, config)
        labels[start : start + label_frames] = 1
        mask[max(0, start - ignore_before) : start] = 0
        mask[start + label_frames : start + label_frames + ignore_after] = 0
    mask[labels == 1] = 1
    return labels, mask


# ----------------------------------------------------------------------------- sources


@dataclass
class Sources:
    """Manifest rows of one split, grouped by kind, with their audio loaded on demand (int16)."""

    rows: dict[str, list[dict]]
    root: Path
    _audio: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def audio(self, row: dict) -> np.ndarray:
        path = row["path"]
        cached = self._audio.get(path)
        if cached is None:
            full = Path(path) if Path(path).is_absolute() else self.root / path
            data, rate = sf.read(str(full), dtype="int16", always_2d=True)
            if rate != SAMPLE_RATE:
                raise ValueError(f"{full}: sample rate {rate}, expected {SAMPLE_RATE}")
            cached = np.ascontiguousarray(data[:, 0])
            self._audio[path] = cached
        return cached.astype(np.float32) / 32768.0

    def count(self, kind: str) -> int:
        return len(self.rows.get(kind, []))

    def pick(
        self, kind: str, rng: np.random.Generator, weights: np.ndarray | None = None
    ) -> tuple[dict, np.ndarray] | None:
        rows = self.rows.get(kind)
        if not rows:
            return None
        index = int(rng.integers(len(rows))) if weights is None else int(rng.choice(len(rows), p=weights))
        row = rows[index]
        return row, self.audio(row)


def engine_weights(rows: list[dict], shares: Mapping[str, float]) -> np.ndarray | None:
    """Row probabilities giving each named engine its share of draws, the rest spread uniformly over
    the other engines' rows (None: uniform over rows, also when that is what the shares come to)."""
    if not shares or not rows:
        return None
    engines = np.array([r.get("engine") for r in rows], dtype=object)
    masks = {e: engines == e for e in shares}
    named = {e: mine for e, mine in masks.items() if mine.any()}
    others = ~np.logical_or.reduce(list(named.values())) if named else np.ones(len(rows), bool)
    if not named or (len(named) == 1 and not others.any()):
        return None
    rest = 1.0 - sum(shares[e] for e in named)
    weights = np.where(others, rest / max(int(others.sum()), 1), 0.0)
    for engine, mine in named.items():
        weights = np.where(mine, shares[engine] / mine.sum(), weights)
    return weights / weights.sum()


def read_manifest(path: Path) -> list[dict]:
    rows = []
    with open(path) as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def manifest_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load_sources(manifest: Path, splits: tuple[str, ...], kinds: tuple[str, ...] | None = None) -> Sources:
    """Rows of the given splits; real-speech rows whose files are missing are skipped with a warning."""
    manifest = Path(manifest)
    grouped: dict[str, list[dict]] = {}
    missing = 0
    for row in read_manifest(manifest):
        if row.get("split") not in splits or (kinds and row["kind"] not in kinds):
            continue
        if Path(row["path"]).is_absolute() and not Path(row["path"]).exists():
            missing += 1
            continue
        grouped.setdefault(row["kind"], []).append(row)
    if missing:
        log.warning("%d manifest rows point at files that are absent (real speech folder?): skipped", missing)
    return Sources(grouped, manifest.parent)


# ----------------------------------------------------------------------------- clip synthesis


def _crop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random n-sample piece of x (looped if x is short)."""
    if len(x) == 0:
        return np.zeros(n, dtype=np.float32)
    if len(x) < n:
        x = np.tile(x, n // len(x) + 1)
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start : start + n].astype(np.float32, copy=False)


def speech_stream(
    sources: Sources,
    n: int,
    rng: np.random.Generator,
    kinds: tuple[str, ...],
    weights: tuple[float, ...] | None = None,
) -> np.ndarray:
    """n samples of utterances back to back with short pauses, entering mid-utterance.

    Each utterance's kind is drawn with ``weights`` (uniform when None) among the kinds present.
    """
    weights = weights or (1.0,) * len(kinds)
    present = [(k, w) for k, w in zip(kinds, weights, strict=True) if sources.count(k) and w > 0]
    if not present:
        return np.zeros(n, dtype=np.float32)
    names = [k for k, _ in present]
    probs = np.array([w for _, w in present]) / sum(w for _, w in present)
    pieces, total = [], 0
    while total < n * 2:
        picked = sources.pick(names[int(rng.choice(len(names), p=probs))], rng)
        assert picked is not None
        level = augment.db_to_amplitude(rng.uniform(-6.0, 0.0))
        utterance = picked[1] * (level / max(augment.active_rms(picked[1]), 1e-6) * 0.1)
        gap = np.zeros(int(rng.uniform(0.05, 0.8) * SAMPLE_RATE), dtype=np.float32)
        pieces += [utterance, gap]
        total += len(utterance) + len(gap)
    return _crop(np.concatenate(pieces), n, rng)


#: What background() can mix under the foreground (the evaluation reports misses per kind).
BACKGROUND_KINDS = ("music", "noise", "synthetic_noise", "babble", "talker")


def background(sources: Sources, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Unit-level background and its kind: music, recorded/synthetic noise, babble, or one distant talker.

    The kind is what was actually mixed (a kind whose sources are missing falls back to synthetic noise).
    """
    choice = str(rng.choice(list(BACKGROUND_KINDS), p=[0.3, 0.2, 0.15, 0.2, 0.15]))
    if choice == "music" and sources.count(MUSIC):
        x = _crop(sources.pick(MUSIC, rng)[1], n, rng)
    elif choice == "noise" and sources.count(NOISE):
        x = _crop(sources.pick(NOISE, rng)[1], n, rng)
    elif choice == "babble" and sources.count(SPEECH):
        x = sum(speech_stream(sources, n, rng, (SPEECH, REAL_SPEECH)) for _ in range(int(rng.integers(3, 7))))
    elif choice == "talker" and sources.count(SPEECH):
        x = speech_stream(sources, n, rng, (SPEECH,))
    else:
        choice = "synthetic_noise"
        x = augment.coloured_noise(rng, n)
        if rng.random() < 0.3:  # mains hum and its harmonics
            t = np.arange(n) / SAMPLE_RATE
            f0 = rng.choice([50.0, 60.0])
            x = x * 0.3 + sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    level = max(augment.rms(np.asarray(x)), 1e-6)
    return (np.asarray(x, dtype=np.float32) / level).astype(np.float32), choice


@dataclass(frozen=True)
class Clip:
    audio: np.ndarray  # float32, 16-bit quantised
    end_sample: int | None  # keyword end (positives only)
    kind: str
    snr_db: float | None
    background: str | None = None  # BACKGROUND_KINDS entry mixed at snr_db; None: only the noise floor
    later_ends: tuple[int, ...] = ()  # ends of further keywords after end_sample (repeat clips)

    @property
    def keyword_ends(self) -> tuple[int, ...]:
        """Every keyword end in the clip, in order (empty for negatives)."""
        return () if self.end_sample is None else (self.end_sample, *self.later_ends)


class ClipFactory:
    """Draws augmented clips from one split's sources."""

    def __init__(self, sources: Sources, config: DatasetConfig, features: FrontEndConfig) -> None:
        self.sources = sources
        self.config = config
        self.features = features
        if not sources.count(POSITIVE):
            raise ValueError("manifest has no positive clips for this split")
        shares = dict(config.positive_engine_shares)
        if not shares and config.espeak_positive_share is not None:
            shares = {"espeak-ng": config.espeak_positive_share}
        self._positive_weights = engine_weights(sources.rows[POSITIVE], shares)

    def _word(self, kind: str, rng: np.random.Generator) -> np.ndarray:
        weights = self._positive_weights if kind == POSITIVE else None
        picked = self.sources.pick(kind, rng, weights) or self.sources.pick(POSITIVE, rng)
        word = picked[1]
        if rng.random() < self.config.augment.speed_p:
            word = augment.change_speed(word, rng.uniform(*self.config.augment.speed))
        return word / max(augment.active_rms(word), 1e-6) * 0.1

    def compose(
        self,
        n: int,
        rng: np.random.Generator,
        word: np.ndarray | None,
        end_sample: int | None,
        is_keyword: bool,
        context_kinds: tuple[str, ...] = (SPEECH, REAL_SPEECH, CONFUSABLE),
        snr_db: float | None = None,
        context_p: float | None = None,
    ) -> Clip:
        """Place ``word`` so it ends at ``end_sample``, add context speech, room, background, microphone."""
        cfg = self.config
        fore = np.zeros(n, dtype=np.float32)
        hop = self.features.hop_samples
        if word is not None and end_sample is not None:
            start = end_sample - len(word)
            fore[max(0, start) : end_sample] = word[max(0, -start) :]
            gap_before = int(rng.uniform(0.12, 0.6) * SAMPLE_RATE)
            if (
                rng.random() < (cfg.context_speech_p if context_p is None else context_p)
                and start - gap_before > SAMPLE_RATE // 4
            ):
                m = start - gap_before
                fore[:m] = speech_stream(self.sources, m, rng, context_kinds)
            after = end_sample + int(rng.uniform(0.2, 0.6) * SAMPLE_RATE)
            if rng.random() < cfg.trailing_speech_p and after < n - hop:
                fore[after:] = speech_stream(self.sources, n - after, rng, context_kinds)
        level_span = np.s_[max(0, end_sample - len(word)) : end_sample] if word is not None else np.s_[:]
        audio, snr, bg_kind = self._room_and_microphone(fore, level_span, rng, snr_db)
        kind = POSITIVE if is_keyword else "negative"
        return Clip(audio, end_sample if is_keyword else None, kind, snr, bg_kind)

    def _room_and_microphone(
        self, fore: np.ndarray, level_span: slice, rng: np.random.Generator, snr_db: float | None = None
    ) -> tuple[np.ndarray, float | None, str | None]:
        """Reverberate the foreground, mix a background at an SNR measured on ``fore[level_span]``
        (the keyword), then the microphone chain; returns (audio, snr, background kind)."""
        cfg = self.config
        n = len(fore)
        if rng.random() < cfg.augment.reverb_p:
            rir = augment.simulated_rir(
                rng, rng.uniform(*cfg.augment.rt60_s), rng.uniform(*cfg.augment.direct_to_reverb_db)
            )
            fore = augment.reverberate(fore, rir)[:n]
        level_ref = fore[level_span]
        clean = (rng.random() < cfg.augment.clean_p) if snr_db is None else math.isinf(snr_db)
        bg_kind = None
        if clean or not np.any(fore):
            mix, snr = fore, None
            if not np.any(fore):
                bg, bg_kind = background(self.sources, n, rng)
                mix = bg * 0.05
        else:
            snr = float(snr_db if snr_db is not None else rng.uniform(*cfg.augment.snr_db))
            bg, bg_kind = background(self.sources, n, rng)
            mix = fore + augment.scale_to_snr(level_ref if np.any(level_ref) else fore, bg, snr)
        return augment.finish(mix, rng, cfg.augment), snr, bg_kind

    def end_position(self, n: int, word_len: int, rng: np.random.Generator, late: bool = False) -> int:
        """Keyword end: late enough for the word (+ a little lead-in), early enough for the 1-run."""
        tail = self.config.label_frames * self.features.hop_samples + int(
            self.config.min_end_margin_s * SAMPLE_RATE
        )
        low = min(word_len + int(0.15 * SAMPLE_RATE), n - tail)
        if late:
            low = max(low, n // 2)
        return int(rng.integers(low, max(low + 1, n - tail)))

    def draw(self, kind: str, n: int, rng: np.random.Generator) -> Clip:
        """One clip of ``kind`` (a ClipMix field name), n samples long."""
        if kind == "positive":
            word = self._word(POSITIVE, rng)
            return self.compose(n, rng, word, self.end_position(n, len(word), rng), True)
        if kind in ("confusable", "truncated", "real_speech"):
            if kind == "truncated":
                word = self._word(POSITIVE, rng)
                word = word[: int(len(word) * rng.uniform(0.4, 0.75))]
            else:
                src = CONFUSABLE if kind == "confusable" else REAL_SPEECH
                word = self._word(src if self.sources.count(src) else SPEECH, rng)
            end = self.end_position(n, len(word), rng)
            return self.compose(n, rng, word[-end:], end, False)
        if kind == "speech":
            fore = speech_stream(self.sources, n, rng, (SPEECH, REAL_SPEECH, CONFUSABLE))
            return self._negative_stream(fore, rng)
        return self._negative_stream(np.zeros(n, dtype=np.float32), rng)

    def _negative_stream(self, fore: np.ndarray, rng: np.random.Generator) -> Clip:
        cfg = self.config
        n = len(fore)
        if np.any(fore) and rng.random() < cfg.augment.reverb_p:
            rir = augment.simulated_rir(
                rng, rng.uniform(*cfg.augment.rt60_s), rng.uniform(*cfg.augment.direct_to_reverb_db)
            )
            fore = augment.reverberate(fore, rir)[:n]
        bg, bg_kind = background(self.sources, n, rng)
        if not np.any(fore):
            mix, snr = bg, None
        elif rng.random() < cfg.augment.clean_p:
            mix, snr, bg_kind = fore, None, None
        else:
            snr = float(rng.uniform(*cfg.augment.snr_db))
            mix = fore + augment.scale_to_snr(fore, bg, snr)
        return Clip(augment.finish(mix, rng, cfg.augment), None, "negative", snr, bg_kind)

    def draw_repeats(self, n: int, rng: np.random.Generator) -> Clip:
        """The keyword said several times by different voices at different levels, a gap (sometimes
        other speech) between them, as a daemon hears people one after another; every end labelled."""
        cfg = self.config
        fore = np.zeros(n, dtype=np.float32)
        tail = cfg.label_frames * self.features.hop_samples + int(cfg.min_end_margin_s * SAMPLE_RATE)
        position = int(rng.uniform(0.2, 1.5) * SAMPLE_RATE)
        ends: list[int] = []
        for _ in range(int(rng.integers(cfg.repeat_count[0], cfg.repeat_count[1] + 1))):
            word = self._word(POSITIVE, rng) * 10 ** (rng.uniform(-6.0, 6.0) / 20)
            if position + len(word) > n - tail:
                break
            fore[position : position + len(word)] = word
            ends.append(position + len(word))
            gap = int(rng.uniform(*cfg.repeat_gap_s) * SAMPLE_RATE)
            if gap > SAMPLE_RATE and rng.random() < cfg.context_speech_p:
                quiet = int(0.3 * SAMPLE_RATE)  # a breath either side of the other speech
                m = min(gap - 2 * quiet, n - ends[-1] - quiet)
                if m > 0:
                    fore[ends[-1] + quiet : ends[-1] + quiet + m] = speech_stream(
                        self.sources, m, rng, (SPEECH, REAL_SPEECH, CONFUSABLE)
                    )
            position = ends[-1] + gap
        if not ends:  # n too short for even one keyword: an ordinary positive
            return self.draw("positive", n, rng)
        audio, snr, bg_kind = self._room_and_microphone(fore, np.s_[: ends[-1]], rng)
        return Clip(audio, ends[0], POSITIVE, snr, bg_kind, later_ends=tuple(ends[1:]))

    def draw_long(self, n: int, rng: np.random.Generator) -> Clip:
        """A long stream of mixed speech (optionally ending in a keyword after all that context, or
        the keyword said several times)."""
        if self.config.repeat_positive_p and rng.random() < self.config.repeat_positive_p:
            return self.draw_repeats(n, rng)
        if rng.random() < self.config.long_positive_p:
            word = self._word(POSITIVE, rng)
            end = self.end_position(n, len(word), rng, late=True)
            return self.compose(n, rng, word, end, True, context_p=0.9)  # mostly speech before it
        fore = speech_stream(self.sources, n, rng, (SPEECH, REAL_SPEECH, CONFUSABLE))
        if rng.random() < 0.2:
            fore = np.zeros(n, dtype=np.float32)  # long music / noise stretches too
        return self._negative_stream(fore, rng)

    def draw_negative_stream(
        self,
        n: int,
        rng: np.random.Generator,
        music_noise_p: float = 0.2,
        kind_weights: tuple[float, float, float] | None = None,
    ) -> Clip:
        """n samples of continuous negatives: music/noise, or speech mixed from sentences, real voices
        and confusables (``kind_weights`` for those three; None = a third each, confusable-dense)."""
        if rng.random() < music_noise_p:
            return self._negative_stream(np.zeros(n, dtype=np.float32), rng)
        fore = speech_stream(self.sources, n, rng, (SPEECH, REAL_SPEECH, CONFUSABLE), kind_weights)
        return self._negative_stream(fore, rng)


# ----------------------------------------------------------------------------- arrays on disk


@dataclass
class ClipArrays:
    """Features [N, T, F] (float16), labels and loss mask [N, T] (uint8), per-clip kind."""

    features: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    kinds: list[str]

    def __len__(self) -> int:
        return len(self.kinds)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "features.npy", self.features)
        np.save(directory / "labels.npy", self.labels)
        np.save(directory / "mask.npy", self.mask)
        (directory / "kinds.json").write_text(json.dumps(self.kinds))

    @classmethod
    def load(cls, directory: Path, mmap: bool = False) -> ClipArrays:
        mode = "r" if mmap else None
        return cls(
            np.load(directory / "features.npy", mmap_mode=mode),
            np.load(directory / "labels.npy", mmap_mode=mode),
            np.load(directory / "mask.npy", mmap_mode=mode),
            json.loads((directory / "kinds.json").read_text()),
        )

    @classmethod
    def concatenate(cls, parts: list[ClipArrays]) -> ClipArrays:
        return cls(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.mask for p in parts]),
            [k for p in parts for k in p.kinds],
        )


def featurise(
    clips: Iterator[tuple[str, Clip]],
    n: int,
    n_samples: int,
    dataset: DatasetConfig,
    features: FrontEndConfig,
    desc: str,
) -> ClipArrays:
    """Compute features and targets for n clips of n_samples each.

    Clips are drawn here, in order (one random generator); the speech-embedding front end, 10x
    the arithmetic of log-mels, is computed by worker processes, which changes no value."""
    frames = frame_count(n_samples, features)
    feats = np.zeros((n, frames, features.dim), dtype=np.float16)
    labels = np.zeros((n, frames), dtype=np.uint8)
    mask = np.zeros((n, frames), dtype=np.uint8)
    kinds = []
    drawn = tqdm(clips, total=n, desc=desc, unit="clip", mininterval=5)
    with _frame_workers(features, n) as pool:
        computed = _compute_all(drawn, features, pool)
        for i, (kind, clip, clip_frames) in enumerate(computed):
            feats[i] = clip_frames
            kinds.append(kind)
            labels[i], mask[i] = frame_targets(
                frames,
                clip.keyword_ends,
                features,
                dataset.label_frames,
                dataset.ignore_before_frames,
                dataset.ignore_after_frames,
            )
    return ClipArrays(feats, labels, mask, kinds)


#: Worker processes for the speech-embedding front end (0: compute in this process), used from
#: this many clips on (starting workers costs a few seconds).
FEATURE_WORKERS = int(os.environ.get("WAKEWORD_FEATURE_WORKERS", str(min(2, os.cpu_count() or 1))))
POOL_MIN_CLIPS = 64


@contextlib.contextmanager
def _frame_workers(features: FrontEndConfig, n: int) -> Iterator[multiprocessing.pool.Pool | None]:
    """A spawned pool (no onnxruntime session crosses a fork) when it pays: embeddings, many clips."""
    if not isinstance(features, EmbeddingConfig) or FEATURE_WORKERS < 1 or n < POOL_MIN_CLIPS:
        yield None
        return
    with multiprocessing.get_context("spawn").Pool(FEATURE_WORKERS) as pool:
        yield pool


def _compute_all(
    drawn: Iterator[tuple[str, Clip]], features: FrontEndConfig, pool: multiprocessing.pool.Pool | None
) -> Iterator[tuple[str, Clip, np.ndarray]]:
    """(kind, clip, frames) in the order drawn; frames from the pool when there is one."""
    if pool is None:
        for kind, clip in drawn:
            yield kind, clip, compute_frames(clip.audio, features)
        return
    batch: list[tuple[str, Clip]] = []
    for item in itertools.chain(drawn, [None]):
        if item is not None:
            batch.append(item)
        if batch and (item is None or len(batch) == 64):
            jobs = [(clip.audio, features) for _, clip in batch]
            # compute_frames lives in wakeword.frontend: workers import that, not the training code.
            for (kind, clip), frames in zip(
                batch, pool.starmap(compute_frames, jobs, chunksize=8), strict=True
            ):
                yield kind, clip, frames
            batch = []


def _short_clips(
    factory: ClipFactory, n: int, n_samples: int, rng: np.random.Generator
) -> Iterator[tuple[str, Clip]]:
    weights = factory.config.mix.weights()
    names = list(weights)
    for _ in range(n):
        kind = names[int(rng.choice(len(names), p=[weights[k] for k in names]))]
        yield kind, factory.draw(kind, n_samples, rng)


def _long_clips(
    factory: ClipFactory, n: int, n_samples: int, rng: np.random.Generator
) -> Iterator[tuple[str, Clip]]:
    for _ in range(n):
        clip = factory.draw_long(n_samples, rng)
        kind = "long_negative" if clip.end_sample is None else "long_positive"
        yield ("long_repeat" if clip.later_ends else kind), clip


def build_datasets(
    manifest: Path, out_dir: Path, dataset: DatasetConfig, features: FrontEndConfig | None = None
) -> dict[str, Path]:
    """Build (or reuse from the cache) the train short/long and validation sets; returns their folders."""
    features = features or FeatureConfig()
    digest = manifest_digest(manifest)
    key = dataset.key(features, digest)
    root = Path(out_dir) / key
    parts = {"train": root / "train", "train_long": root / "train_long", "val": root / "val"}
    if all((p / "kinds.json").exists() for p in parts.values()):
        log.info("dataset cache hit %s", root)
        return parts
    train = load_sources(manifest, TRAIN_SPLITS)
    val = load_sources(manifest, EVAL_SPLITS)
    log.info("train sources: %s", {k: len(v) for k, v in train.rows.items()})
    log.info("val sources: %s", {k: len(v) for k, v in val.rows.items()})
    short_n = int(dataset.clip_s * SAMPLE_RATE)
    long_n = int(dataset.long_clip_s * SAMPLE_RATE)
    rng = np.random.default_rng(dataset.seed)
    seeds = rng.integers(0, 2**31, size=3)
    jobs = [
        ("train", ClipFactory(train, dataset, features), _short_clips, dataset.n_short, short_n, seeds[0]),
        ("train_long", ClipFactory(train, dataset, features), _long_clips, dataset.n_long, long_n, seeds[1]),
        ("val", ClipFactory(val, dataset, features), _short_clips, dataset.n_val, short_n, seeds[2]),
    ]
    for name, factory, generator, n, n_samples, seed in jobs:
        if (parts[name] / "kinds.json").exists():
            continue
        clip_rng = np.random.default_rng(int(seed))
        arrays = featurise(generator(factory, n, n_samples, clip_rng), n, n_samples, dataset, features, name)
        arrays.save(parts[name])
    (root / "config.json").write_text(
        json.dumps({"dataset": asdict(dataset), "features": features.to_dict(), "manifest": digest}, indent=2)
    )
    return parts
