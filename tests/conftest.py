"""Shared fixtures: small real ONNX models exported at test time, and the shipped model.

torch is imported inside the fixtures so collecting the suite stays fast and
tests that need no model never pay for it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO_ROOT / "models" / "espresso.onnx"


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """torch's legacy ONNX exporter warns about itself and about GRU batch sizes; neither applies here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        warnings.filterwarnings("ignore", message=".*batch_size other than 1")
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        yield


@pytest.fixture(scope="session")
def export_model():
    """``export_model(net, metadata, path)``: training.export.export_onnx without torch's export noise."""
    from training.export import export_onnx

    def export(net, metadata, path: Path) -> Path:
        with quiet_export():
            return export_onnx(net, metadata, path)

    return export


@pytest.fixture(scope="session")
def quiet_torch_export():
    """A context manager that silences torch's legacy-exporter warnings (for tests that export)."""
    return quiet_export


@pytest.fixture(scope="session")
def tiny_network():
    """A random-weight WakeWordNet (seed 1234) in eval mode, with non-trivial normalisation."""
    import torch

    from training.network import NetworkConfig, WakeWordNet

    torch.manual_seed(1234)
    net = WakeWordNet(NetworkConfig())
    with torch.no_grad():
        net.feature_mean.copy_(torch.linspace(-8.0, -4.0, net.config.n_mels))
        net.feature_std.copy_(torch.linspace(2.0, 4.0, net.config.n_mels))
    return net.eval()


@pytest.fixture(scope="session")
def tiny_model_path(tiny_network, export_model, tmp_path_factory) -> Path:
    """The tiny network exported with training.export.export_onnx, wake word "espresso"."""
    from wakeword.metadata import ModelMetadata

    path = tmp_path_factory.mktemp("tiny-model") / "espresso.onnx"
    return export_model(tiny_network, ModelMetadata(wake_word="espresso", description="random weights"), path)


def _build_loud_network(n_mels: int = 40, hidden: int = 8):
    """A memoryless WakeWordNet whose probability is ~1 on loud frames and ~0 on quiet ones.

    Each GRU layer's update gate is pinned shut (bias -30) and its recurrent weights are
    zero, so every hidden unit is ``tanh(gain * input)``: layer 0 averages the normalised
    log-mels (mean -6 splits digital silence, log-mel -13.8, from loud noise, around +2),
    layer 1 passes that on, and the head scales it into a sigmoid. Gives real,
    deterministic detections without a trained model.
    """
    import torch

    from training.network import NetworkConfig, WakeWordNet

    net = WakeWordNet(NetworkConfig(n_mels=n_mels, hidden=hidden, layers=2, dropout=0.0))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.feature_mean.fill_(-6.0)
        net.feature_std.fill_(1.0)
        for layer, width in ((0, n_mels), (1, hidden)):
            w_ih = getattr(net.gru, f"weight_ih_l{layer}")  # rows: reset, update, new
            b_ih = getattr(net.gru, f"bias_ih_l{layer}")
            b_ih[hidden : 2 * hidden] = -30.0  # update gate ~0: h_t = n_t, no memory
            w_ih[2 * hidden :, :] = (1.0 if layer == 0 else 3.0) / width
        net.head.weight.fill_(12.0)
    return net.eval()


@pytest.fixture(scope="session")
def loud_network_factory():
    """Builds loud-audio networks (e.g. to export with other feature settings)."""
    return _build_loud_network


@pytest.fixture(scope="session")
def loud_model_path(export_model, tmp_path_factory) -> Path:
    """ONNX model (wake word "loud") that fires on loud audio; see :func:`_build_loud_network`."""
    from wakeword.metadata import DetectorSettings, ModelMetadata

    metadata = ModelMetadata(
        wake_word="loud",
        detector=DetectorSettings(threshold=0.5, smoothing_frames=3, patience_frames=4, refractory_s=0.5),
        frames_per_step=8,
    )
    path = tmp_path_factory.mktemp("loud-model") / "loud.onnx"
    return export_model(_build_loud_network(), metadata, path)


@pytest.fixture(scope="session")
def shipped_model_path() -> Path:
    """The trained models/espresso.onnx; skips while it has not been trained."""
    if not SHIPPED_MODEL.is_file():
        pytest.skip("models/espresso.onnx not trained yet")
    return SHIPPED_MODEL
