"""WakeWordModel: streaming with carried state equals one run and torch; loading refuses bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wakeword.errors import ModelError
from wakeword.metadata import METADATA_KEY, ModelMetadata
from wakeword.model import MODEL_DIR_ENV, SHIPPED_MODEL_NAME, WakeWordModel, default_model_path


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> WakeWordModel:
    return WakeWordModel.load(tiny_model_path)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Log-mel-like frames: around the normalisation range of the tiny network."""
    rng = np.random.default_rng(42)
    return (rng.standard_normal((157, 40)) * 3.0 - 6.0).astype(np.float32)


def _stream(model: WakeWordModel, frames: np.ndarray, sizes: list[int]) -> np.ndarray:
    state, out, start = model.initial_state(), [], 0
    for size in sizes:
        probs, state = model.run(frames[start : start + size], state)
        assert probs.shape == (min(size, frames.shape[0] - start),)
        out.append(probs)
        start += size
    assert start >= frames.shape[0]
    return np.concatenate(out)


def _sizes(total: int, size: int) -> list[int]:
    return [size] * (-(-total // size))


def test_loaded_model_exposes_metadata_and_single_threaded_cpu_session(model: WakeWordModel) -> None:
    assert model.name == "espresso"
    assert model.metadata.features.n_mels == 40
    declared = next(i for i in model._session.get_inputs() if i.name == "hidden_in").shape
    layers, hidden = declared[0], declared[-1]
    assert isinstance(layers, int) and isinstance(hidden, int)  # fixed sizes, not symbolic
    assert model.initial_state().shape == (layers, 1, hidden)
    assert not model.initial_state().any()
    assert model._session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("chunking", ["1", "3", "8", "random"])
def test_streaming_with_carried_state_equals_one_whole_run(
    model: WakeWordModel, frames: np.ndarray, chunking: str
) -> None:
    whole, final_state = model.run(frames, model.initial_state())
    if chunking == "random":
        rng = np.random.default_rng(3)
        sizes, total = [], 0
        while total < frames.shape[0]:
            sizes.append(int(rng.integers(1, 20)))
            total += sizes[-1]
    else:
        sizes = _sizes(frames.shape[0], int(chunking))
    streamed = _stream(model, frames, sizes)
    assert streamed.shape == whole.shape == (frames.shape[0],)
    assert np.max(np.abs(streamed - whole)) < 1e-4
    # Random weights still give varied outputs, so the comparison is not trivially 0 == 0.
    assert whole.std() > 1e-3


def test_onnx_output_equals_torch_network(model: WakeWordModel, tiny_network, frames: np.ndarray) -> None:
    import torch

    with torch.no_grad():
        expected, hidden = tiny_network(torch.from_numpy(frames)[None], tiny_network.initial_state(1))
    probs, state = model.run(frames, model.initial_state())
    assert np.max(np.abs(probs - expected.numpy()[0])) < 1e-4
    assert np.max(np.abs(state - hidden.numpy())) < 1e-4


def test_state_carries_information(model: WakeWordModel, frames: np.ndarray) -> None:
    _, state = model.run(frames[:50], model.initial_state())
    carried, _ = model.run(frames[50:60], state)
    fresh, _ = model.run(frames[50:60], model.initial_state())
    assert np.max(np.abs(carried - fresh)) > 1e-4


def test_zero_frames_return_no_probabilities_and_the_same_state(model: WakeWordModel) -> None:
    state = model.initial_state() + 0.5
    probs, new_state = model.run(np.zeros((0, 40), dtype=np.float32), state)
    assert probs.shape == (0,)
    assert np.array_equal(new_state, state)


def test_wrong_feature_width_is_a_value_error(model: WakeWordModel) -> None:
    with pytest.raises(ValueError, match="40"):
        model.run(np.zeros((5, 13), dtype=np.float32), model.initial_state())


# --- loading refuses bad files with one line naming the file ------------------------------------


def _assert_one_line_model_error(path: Path, *fragments: str) -> str:
    with pytest.raises(ModelError) as info:
        WakeWordModel.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    _assert_one_line_model_error(tmp_path / "nope.onnx", "not found")


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    _assert_one_line_model_error(tmp_path, "not a regular file")


def test_random_bytes_are_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _assert_one_line_model_error(path, "not a valid ONNX model")


def test_empty_file_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    _assert_one_line_model_error(path, "not a valid ONNX model")


def test_truncated_model_is_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.onnx"
    path.write_bytes(tiny_model_path.read_bytes()[: tiny_model_path.stat().st_size // 2])
    _assert_one_line_model_error(path, "not a valid ONNX model")


def _rewrite_metadata(source: Path, target: Path, value: str | None) -> Path:
    import onnx

    proto = onnx.load(str(source))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    for key, val in kept:
        proto.metadata_props.add(key=key, value=val)
    if value is not None:
        proto.metadata_props.add(key=METADATA_KEY, value=value)
    onnx.save(proto, str(target))
    return target


def test_onnx_without_our_metadata(tiny_model_path: Path, tmp_path: Path) -> None:
    path = _rewrite_metadata(tiny_model_path, tmp_path / "plain.onnx", None)
    _assert_one_line_model_error(path, "no 'wakeword' metadata")


def test_metadata_that_is_not_json(tiny_model_path: Path, tmp_path: Path) -> None:
    path = _rewrite_metadata(tiny_model_path, tmp_path / "garbled.onnx", "{not json")
    _assert_one_line_model_error(path, "not JSON")


def _metadata_dict() -> dict:
    return json.loads(ModelMetadata(wake_word="espresso").to_json())


def test_metadata_of_another_format_version(tiny_model_path: Path, tmp_path: Path) -> None:
    data = _metadata_dict() | {"format_version": 99}
    path = _rewrite_metadata(tiny_model_path, tmp_path / "future.onnx", json.dumps(data))
    _assert_one_line_model_error(path, "format_version 99")


def test_metadata_of_another_feature_version(tiny_model_path: Path, tmp_path: Path) -> None:
    data = _metadata_dict()
    data["features"]["version"] = 0
    path = _rewrite_metadata(tiny_model_path, tmp_path / "oldfeatures.onnx", json.dumps(data))
    _assert_one_line_model_error(path, "feature version 0")


def test_metadata_with_invalid_detector_settings(tiny_model_path: Path, tmp_path: Path) -> None:
    data = _metadata_dict()
    data["detector"]["threshold"] = 3
    path = _rewrite_metadata(tiny_model_path, tmp_path / "badthreshold.onnx", json.dumps(data))
    _assert_one_line_model_error(path, "threshold")


def test_metadata_n_mels_not_matching_the_graph(tiny_model_path: Path, tmp_path: Path) -> None:
    data = _metadata_dict()
    data["features"]["n_mels"] = 32
    path = _rewrite_metadata(tiny_model_path, tmp_path / "mels.onnx", json.dumps(data))
    _assert_one_line_model_error(path, "features", "32")


class _OtherModule:
    """Builders for ONNX graphs from tiny torch modules that are not WakeWordNets."""

    quiet = None  # set by the autouse fixture below

    @staticmethod
    def export(
        module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict | None = None
    ) -> Path:
        import torch

        from wakeword.metadata import ModelMetadata

        with torch.no_grad(), _OtherModule.quiet():
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
        return _rewrite_metadata(path, path, ModelMetadata(wake_word="other").to_json())


@pytest.fixture(autouse=True)
def _quiet_exports(quiet_torch_export) -> None:
    _OtherModule.quiet = quiet_torch_export


def test_graph_with_wrong_input_names(tmp_path: Path) -> None:
    import torch

    path = _OtherModule.export(
        torch.nn.Linear(40, 1), (torch.zeros(1, 8, 40),), tmp_path / "linear.onnx", ["x"], ["y"]
    )
    _assert_one_line_model_error(path, "graph inputs are ['x']")


def test_graph_with_right_names_but_wrong_shapes(tmp_path: Path) -> None:
    import torch

    class WrongShapes(torch.nn.Module):
        def forward(self, features: torch.Tensor, hidden: torch.Tensor):
            return features.sum(-1), hidden * 2

    path = _OtherModule.export(
        WrongShapes(),
        (torch.zeros(1, 8, 20), torch.zeros(1, 1, 4)),
        tmp_path / "shapes.onnx",
        ["features", "hidden_in"],
        ["probability", "hidden_out"],
    )
    _assert_one_line_model_error(path, "'features' has shape [1, 8, 20]")


def test_graph_with_a_fixed_frame_count(tmp_path: Path) -> None:
    import torch

    class Fixed(torch.nn.Module):
        def forward(self, features: torch.Tensor, hidden: torch.Tensor):
            return features.mean(-1), hidden

    path = _OtherModule.export(
        Fixed(),
        (torch.zeros(1, 8, 40), torch.zeros(2, 1, 4)),
        tmp_path / "fixed.onnx",
        ["features", "hidden_in"],
        ["probability", "hidden_out"],
    )
    _assert_one_line_model_error(path, "fixed frame count 8")


def test_graph_whose_outputs_have_wrong_shapes_at_run_time(tmp_path: Path) -> None:
    import torch

    class Collapses(torch.nn.Module):
        def forward(self, features: torch.Tensor, hidden: torch.Tensor):
            return features.mean(-1)[:, :1], hidden[:1]

    path = _OtherModule.export(
        Collapses(),
        (torch.zeros(1, 8, 40), torch.zeros(2, 1, 4)),
        tmp_path / "collapses.onnx",
        ["features", "hidden_in"],
        ["probability", "hidden_out"],
        dynamic={"features": {1: "frames"}},
    )
    _assert_one_line_model_error(path, "graph does not match")


# --- where the shipped model is looked for -------------------------------------------------------


def test_default_model_path_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    assert default_model_path() == tmp_path / SHIPPED_MODEL_NAME


def test_default_model_path_is_the_repository_models_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    repo_models = Path(__file__).resolve().parent.parent / "models"
    assert default_model_path() == repo_models / SHIPPED_MODEL_NAME


def test_missing_shipped_model_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    message = _assert_one_line_model_error(default_model_path(), "not found", "make model")
    assert MODEL_DIR_ENV in message


def test_shipped_model_loads(shipped_model_path: Path) -> None:
    model = WakeWordModel.load(shipped_model_path)
    assert model.name == "espresso"
    probs, _ = model.run(np.full((20, 40), -13.8, dtype=np.float32), model.initial_state())
    assert np.all((probs >= 0) & (probs <= 1))
