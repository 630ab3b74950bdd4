"""What a model file says about itself.

Everything the runtime must know to run a model (its front end, how many frames
to feed per call, default detector settings, the wake word) travels inside the
ONNX file as one JSON document under the metadata key ``wakeword``. Code holds
no per-model constants, so a model can never be run with the wrong front end.

ONNX graph contract (format_version 1):
    inputs:  ``features``  float32 [1, T, dim]   front-end frames: log/PCEN mels (wakeword.features)
                                            or speech embeddings (wakeword.embedding); the
                                            metadata's ``features`` says which (``kind``)
             ``hidden_in`` float32 [rows, 1, width]   recurrent state, zeros at start (opaque to the
                                            runtime: one row per RNN layer, and extra rows may carry a
                                            conv front end's frame history)
    outputs: ``probability`` float32 [1, T]   per-frame wake-word probability (sigmoid applied)
             ``hidden_out`` float32 [rows, 1, width]  state to feed to the next call
Input normalisation is part of the graph.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from wakeword import frontend
from wakeword.features import FeatureConfig
from wakeword.frontend import FrontEndConfig

METADATA_KEY = "wakeword"
FORMAT_VERSION = 1

INPUT_FEATURES = "features"
INPUT_HIDDEN = "hidden_in"
OUTPUT_PROBABILITY = "probability"
OUTPUT_HIDDEN = "hidden_out"


#: Bounds of DetectorSettings.state_reset_s: under a second no copy hears a whole word.
MIN_STATE_RESET_S = 1.0
MAX_STATE_RESET_S = 3600.0


@dataclass(frozen=True)
class DetectorSettings:
    """Debounce settings; a model carries the ones it was evaluated with, config may override each."""

    threshold: float = 0.5
    smoothing_frames: int = 1  # moving average over this many frames (1 = none)
    patience_frames: int = 3  # frames in a row at or above threshold before firing
    refractory_s: float = 1.5  # no second detection within this time
    # The model's hidden state over an endless stream (wakeword.state): two copies, restarted in
    # turn every state_reset_s / 2 seconds, each silent for state_warm_s after its restart.
    # 0 (the default) keeps one state for the whole stream: with 4 s the alexa model fired 14.5 times
    # an hour on held-out negatives instead of 0.33 (README, "Long streams"), so it is opt-in.
    state_reset_s: float = 0.0
    state_warm_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        if self.smoothing_frames < 1 or self.patience_frames < 1:
            raise ValueError("smoothing_frames and patience_frames must be >= 1")
        if self.refractory_s < 0:
            raise ValueError("refractory_s must be >= 0")
        if self.state_reset_s != 0 and not MIN_STATE_RESET_S <= self.state_reset_s <= MAX_STATE_RESET_S:
            raise ValueError(
                f"state_reset_s must be 0 (never) or {MIN_STATE_RESET_S}..{MAX_STATE_RESET_S} seconds"
            )
        if self.state_warm_s < 0 or (self.state_reset_s and self.state_warm_s > self.state_reset_s / 2):
            raise ValueError("state_warm_s must be between 0 and half of state_reset_s")


@dataclass(frozen=True)
class ModelMetadata:
    """The JSON document stored in the ONNX file under ``wakeword``."""

    wake_word: str
    features: FrontEndConfig = field(default_factory=FeatureConfig)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    frames_per_step: int = 8  # frames per onnxruntime call in live streaming
    format_version: int = FORMAT_VERSION
    description: str = ""
    version: str = "0"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        """Parse and validate; raises ValueError with a readable reason."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("metadata is not a JSON object")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"model format_version {data.get('format_version')!r} is not supported "
                f"(this wakeword reads {FORMAT_VERSION})"
            )
        try:
            features = frontend.from_dict(data.get("features", {}))
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc
        try:
            return cls(
                wake_word=str(data["wake_word"]),
                features=features,
                detector=DetectorSettings(**data.get("detector", {})),
                frames_per_step=int(data.get("frames_per_step", 8)),
                format_version=FORMAT_VERSION,
                description=str(data.get("description", "")),
                version=str(data.get("version", "0")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid model metadata: {exc}") from exc
