"""training/ensemble.py: several models of one word merged into one ONNX model (mean probability).

Real exports of small random networks, loaded by the runtime: the merged model must give exactly
the mean of its members' probabilities, frame by frame, with each member's state carried apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from training.ensemble import EnsembleError, main, merge, write
from wakeword.engine import Detector, detect_samples
from wakeword.metadata import ModelMetadata
from wakeword.model import WakeWordModel


@pytest.fixture(scope="module")
def members(export_model, tmp_path_factory) -> list[Path]:
    """Two random-weight espresso models (other seeds than the tiny model) and the tiny one's card."""
    import torch

    from training.network import NetworkConfig, WakeWordNet

    folder = tmp_path_factory.mktemp("members")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = WakeWordNet(NetworkConfig()).eval()
        path = folder / f"espresso-{seed}.onnx"
        paths.append(export_model(net, ModelMetadata(wake_word="espresso", version=f"seed{seed}"), path))
    paths[0].with_suffix(".yaml").write_text(
        yaml.safe_dump(
            {
                "model": {"file": "espresso-1.onnx", "architecture": "GRU", "parameters": 123},
                "reevaluated": {"at": "2026-12-01T00:00:00Z"},  # scored that member, not a mean
            }
        )
    )
    return paths


def test_merged_probability_is_the_mean_of_the_members_with_their_own_states(members, tmp_path) -> None:
    out = write(members, "espresso", tmp_path)
    merged = WakeWordModel.load(out)
    singles = [WakeWordModel.load(p) for p in members]
    assert merged.state_shape[0] == sum(m.state_shape[0] for m in singles)
    rng = np.random.default_rng(0)
    state = merged.initial_state()
    states = [m.initial_state() for m in singles]
    for frames in (8, 3, 8):  # state carried across calls, as in a stream
        features = rng.standard_normal((frames, 40)).astype(np.float32) * 3 - 6
        probs, state = merged.run(features, state)
        each = []
        for i, model in enumerate(singles):
            p, states[i] = model.run(features, states[i])
            each.append(p)
        np.testing.assert_allclose(probs, np.mean(each, axis=0), atol=1e-6)
    assert not np.allclose(each[0], each[1])  # two different members, or the test proves nothing
    assert merged.name == "espresso" and "mean of 2 models" in merged.metadata.description
    card = yaml.safe_load((tmp_path / "espresso.yaml").read_text())
    second_weights = sum(int(np.prod(t.dims)) for t in onnx.load(str(members[1])).graph.initializer)
    assert card["model"] == {
        "file": "espresso-1.onnx",
        "architecture": "mean of 2 models, each: GRU",
        "parameters": 123 + second_weights,  # the first member's card, the second's ONNX weights
    }
    assert len(card["ensemble"]["members"]) == 2 and second_weights > 1000
    assert "reevaluated" not in card  # the mean is not scored until training.reevaluate runs on it
    audio = (rng.standard_normal(16000 * 2) * 3000).astype(np.int16)
    detect_samples(audio, Detector([out], threshold=0.5))  # the runtime streams it like any model


def test_members_that_cannot_be_merged_are_refused_in_one_line(
    members, loud_model_path, tmp_path, capsys
) -> None:
    with pytest.raises(EnsembleError, match="at least two"):
        merge(members[:1])
    with pytest.raises(EnsembleError, match="wake word"):
        merge([members[0], loud_model_path])
    assert (
        main([str(members[0]), str(tmp_path / "missing.onnx"), "--name", "x", "--output-dir", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert "missing.onnx: model file not found" in err and err.count("\n") == 1
