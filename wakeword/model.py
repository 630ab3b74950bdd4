"""One wake-word model: an onnxruntime session, its metadata, and explicit hidden state.

The session is single-threaded (one intra-op and one inter-op thread, CPU
provider): a GRU step on a handful of frames is far too small to gain from
threads, and a daemon that runs next to other software should use one core at
most. The hidden state is passed in and returned by :meth:`WakeWordModel.run`
rather than kept inside, so one loaded model can serve any number of streams
(one per microphone or Wyoming client) without locks.

Loading checks everything the runtime relies on (file, ONNX, our metadata,
graph inputs and outputs) and reports the first problem as one line naming the
file, because a wrong model otherwise fails much later and far less clearly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from wakeword import frontend
from wakeword.errors import ModelError
from wakeword.frontend import FrontEndConfig
from wakeword.metadata import (
    INPUT_FEATURES,
    INPUT_HIDDEN,
    METADATA_KEY,
    OUTPUT_HIDDEN,
    OUTPUT_PROBABILITY,
    ModelMetadata,
)

# A wake-word daemon listens in people's homes: it sends nothing anywhere, onnxruntime's
# usage telemetry included (the systemd units also set ORT_DISABLE_TELEMETRY=1).
ort.disable_telemetry_events()

log = logging.getLogger(__name__)

#: File name of the model that ships with wakeword.
SHIPPED_MODEL_NAME = "espresso.onnx"
#: Environment variable naming a directory that holds the shipped model (packagers, tests).
MODEL_DIR_ENV = "WAKEWORD_MODEL_DIR"


def _repo_models_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "models"


def _prefix_models_dir() -> Path:
    return Path(sys.prefix) / "share" / "wakeword" / "models"


def default_model_path() -> Path:
    """Where the shipped model lives.

    ``$WAKEWORD_MODEL_DIR/espresso.onnx`` when that variable is set; otherwise
    ``models/espresso.onnx`` next to the package (a source checkout), then
    ``<sys.prefix>/share/wakeword/models/espresso.onnx`` (an installed package).
    When neither file exists the checkout path is returned if its ``models/``
    directory exists, else the installed path, so the error names a sensible place.
    """
    env_dir = os.environ.get(MODEL_DIR_ENV)
    if env_dir:
        return Path(env_dir).expanduser() / SHIPPED_MODEL_NAME
    repo = _repo_models_dir() / SHIPPED_MODEL_NAME
    prefix = _prefix_models_dir() / SHIPPED_MODEL_NAME
    for candidate in (repo, prefix):
        if candidate.is_file():
            return candidate
    return repo if repo.parent.is_dir() else prefix


def _one_line(text: object, limit: int = 200) -> str:
    """Squash an exception message (onnxruntime's are multi-line) into one short line."""
    line = " ".join(str(text).split())
    line = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .* failed: ?)?", "", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: onnxruntime warnings are not for end users
    return options


def _fixed_dims(shape: list, name: str) -> list[int]:
    dims = []
    for dim in shape:
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"input {name!r} must have a fixed shape, got {shape}")
        dims.append(dim)
    return dims


def _check_graph(session: ort.InferenceSession, metadata: ModelMetadata) -> tuple[int, int]:
    """Check graph names, types and shapes against the format; returns (layers, hidden)."""
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name: node for node in session.get_outputs()}
    if set(inputs) != {INPUT_FEATURES, INPUT_HIDDEN}:
        raise ValueError(
            f"graph inputs are {sorted(inputs)}, expected {sorted([INPUT_FEATURES, INPUT_HIDDEN])}"
        )
    if set(outputs) != {OUTPUT_PROBABILITY, OUTPUT_HIDDEN}:
        raise ValueError(
            f"graph outputs are {sorted(outputs)}, expected {sorted([OUTPUT_PROBABILITY, OUTPUT_HIDDEN])}"
        )
    for node in (*inputs.values(), *outputs.values()):
        if node.type != "tensor(float)":
            raise ValueError(f"{node.name!r} has type {node.type}, expected tensor(float)")
    feat_shape, dim = inputs[INPUT_FEATURES].shape, metadata.features.dim
    if len(feat_shape) != 3 or feat_shape[2] != dim:
        raise ValueError(f"input {INPUT_FEATURES!r} has shape {feat_shape}, expected [1, frames, {dim}]")
    if isinstance(feat_shape[1], int):
        raise ValueError(
            f"input {INPUT_FEATURES!r} has a fixed frame count {feat_shape[1]}, expected a dynamic one"
        )
    hidden_shape = _fixed_dims(inputs[INPUT_HIDDEN].shape, INPUT_HIDDEN)
    if len(hidden_shape) != 3 or hidden_shape[1] != 1:
        raise ValueError(f"input {INPUT_HIDDEN!r} has shape {hidden_shape}, expected [state rows, 1, width]")
    prob_shape = outputs[OUTPUT_PROBABILITY].shape
    if len(prob_shape) != 2:
        raise ValueError(f"output {OUTPUT_PROBABILITY!r} has shape {prob_shape}, expected [1, frames]")
    return hidden_shape[0], hidden_shape[2]  # (state rows, width): opaque to the runtime


class WakeWordModel:
    """A loaded model. Stateless apart from the session: callers own the hidden state."""

    def __init__(
        self, path: Path, session: ort.InferenceSession, metadata: ModelMetadata, digest: str = ""
    ) -> None:
        self.path = path
        self.metadata = metadata
        #: SHA-256 of the file as loaded: a reload can tell a retrained model at the same path apart
        self.digest = digest
        self._session = session
        rows, width = _check_graph(session, metadata)
        self._state_shape = (rows, 1, width)
        self._outputs = [OUTPUT_PROBABILITY, OUTPUT_HIDDEN]

    @property
    def name(self) -> str:
        """The wake word (from the metadata); detections are labelled with it."""
        return self.metadata.wake_word

    @property
    def features(self) -> FrontEndConfig:
        return self.metadata.features

    @property
    def state_shape(self) -> tuple[int, int, int]:
        return self._state_shape

    def __repr__(self) -> str:
        return f"WakeWordModel({self.name!r}, {str(self.path)!r})"

    @classmethod
    def load(cls, path: str | Path) -> WakeWordModel:
        """Load and validate; any problem is a :class:`ModelError` ``"<path>: <reason>"`` on one line."""
        path = Path(path).expanduser()
        if not path.exists():
            hint = ""
            if path.name == SHIPPED_MODEL_NAME and path == default_model_path():
                hint = (
                    f" (the shipped model is missing: train it with `make model`, "
                    f"or set {MODEL_DIR_ENV} to a directory holding {SHIPPED_MODEL_NAME})"
                )
            raise ModelError(f"{path}: model file not found{hint}")
        if not path.is_file():
            raise ModelError(f"{path}: not a regular file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        try:
            session = ort.InferenceSession(
                data, sess_options=_session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for bad files
            raise ModelError(f"{path}: not a valid ONNX model ({_one_line(exc)})") from exc
        props = session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ModelError(
                f"{path}: ONNX file has no {METADATA_KEY!r} metadata, so it is not a wakeword model "
                "(export models with training.export)"
            )
        try:
            metadata = ModelMetadata.from_json(props[METADATA_KEY])
        except ValueError as exc:
            raise ModelError(f"{path}: {_one_line(exc)}") from exc
        try:
            frontend.check_available(metadata.features)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from exc
        if metadata.frames_per_step < 1:
            raise ModelError(f"{path}: metadata frames_per_step must be >= 1, got {metadata.frames_per_step}")
        try:
            model = cls(path, session, metadata, hashlib.sha256(data).hexdigest())
            model._smoke_test()
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{path}: graph does not match the wakeword format: {_one_line(exc)}") from exc
        log.debug("loaded %s from %s", model.name, path)
        return model

    def _smoke_test(self) -> None:
        """Run two frames once, so a graph that only looks right fails at load, not mid-stream."""
        frames = np.zeros((2, self.features.dim), dtype=np.float32)
        probs, state = self.run(frames, self.initial_state())
        if probs.shape != (2,) or state.shape != self._state_shape:
            raise ModelError(
                f"{self.path}: graph does not match the wakeword format: two frames gave probability shape "
                f"{probs.shape} and hidden_out shape {state.shape}, expected (2,) and {self._state_shape}"
            )

    def initial_state(self) -> np.ndarray:
        """Hidden state at the start of a stream (zeros)."""
        return np.zeros(self._state_shape, dtype=np.float32)

    def run(self, features: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``[T, dim]`` and hidden state -> (probabilities ``[T]``, next hidden state)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.features.dim:
            raise ValueError(f"features must have shape [T, {self.features.dim}], got {features.shape}")
        if features.shape[0] == 0:
            return np.zeros(0, dtype=np.float32), state
        probs, new_state = self._session.run(
            self._outputs,
            {
                INPUT_FEATURES: np.ascontiguousarray(features[None, :, :]),
                INPUT_HIDDEN: np.ascontiguousarray(state, dtype=np.float32),
            },
        )
        return np.asarray(probs, dtype=np.float32).reshape(-1), new_state
