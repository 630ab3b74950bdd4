"""Re-scoring an existing model (training/reevaluate.py): what it rewrites and what it must leave alone.

The full re-evaluation (synthesised clips, hours of negatives) is exercised end to end by
`make model-smoke`, which re-scores the smoke model it has just built; these tests are the cheap parts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch", reason="training needs torch (the training extra)")

from training import reevaluate as rv  # noqa: E402
from training.export import set_detector_defaults  # noqa: E402
from training.make_model import limits_note  # noqa: E402
from wakeword.metadata import DetectorSettings  # noqa: E402
from wakeword.model import WakeWordModel  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"


def _probabilities(model: WakeWordModel, features: np.ndarray) -> np.ndarray:
    probs, _ = model.run(features, model.initial_state())
    return probs


def test_new_detector_defaults_change_the_metadata_and_nothing_the_model_computes(tmp_path: Path) -> None:
    path = tmp_path / "espresso.onnx"
    shutil.copy(MODELS / "espresso.onnx", path)
    before = WakeWordModel.load(path)
    chosen = DetectorSettings(threshold=0.8, patience_frames=6, smoothing_frames=2, refractory_s=2.0)
    assert before.metadata.detector != chosen

    set_detector_defaults(path, chosen, version="2026.12.02")

    after = WakeWordModel.load(path)
    assert after.metadata.detector == chosen
    assert after.metadata.version == "2026.12.02"
    assert after.metadata.features == before.metadata.features
    assert after.metadata.wake_word == before.metadata.wake_word
    features = np.random.default_rng(0).normal(size=(64, before.features.n_mels)).astype(np.float32)
    np.testing.assert_array_equal(_probabilities(after, features), _probabilities(before, features))
    assert not list(tmp_path.glob("*.partial"))


def test_refreshed_card_replaces_evaluation_sections_and_keeps_the_run_that_made_the_model() -> None:
    old = {
        "name": "espresso",
        "created": "2026-11-25T15:58:34Z",
        "model": {"parameters": 164481, "onnx_bytes": 1},
        "detector": {"threshold": 0.95},
        "metrics": {"frr_snr_ge_5db": 0.2},
        "training": {"steps": 4000},
        "data": {"clips": 5},
        "notes": ["old"],
        "recipe": {"seed": 0},
        "reevaluated": {"at": "earlier"},
    }
    evaluated = {key: f"new {key}" for key in rv.EVALUATED}
    card = rv.refreshed_card(old, evaluated, onnx_bytes=661_500, record={"at": "now"})

    for key in rv.EVALUATED:
        assert card[key] == f"new {key}"
    for key in ("name", "created", "training", "data", "recipe"):
        assert card[key] == old[key]
    assert card["model"] == {"parameters": 164481, "onnx_bytes": 661_500}
    assert card["reevaluated"] == {"at": "now"}
    assert list(card)[:3] == ["name", "created", "model"]  # original order, new sections after


def test_limits_note_names_the_worst_backgrounds_first_and_the_training_voice_gap() -> None:
    shipped = {
        "frr_snr_ge_5db": 0.097,
        "training_voices_frr_snr_ge_5db": 0.069,
        "frr_snr_ge_5db_by_background": {
            "music": {"by_snr": {"20dB": 0.05, "5dB": 0.19}},
            "talker": {"by_snr": {"20dB": 0.02, "5dB": 0.35}},
            "none": {"by_snr": {"clean": 0.04}},
        },
    }
    note = limits_note(shipped, 5.0)
    assert note is not None
    assert note.index("talker 35%") < note.index("music 19%")
    assert "none" not in note  # no clips at 5 dB
    assert "6.9% against 9.7%" in note
    assert limits_note({"frr_snr_ge_5db": 0.1}, 5.0) is None


def test_a_card_for_another_word_or_no_card_is_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(rv.CardError, match="no model card"):
        rv.read_card(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(rv.CardError, match="unreadable"):
        rv.read_card(tmp_path / "broken.yaml")
    (tmp_path / "other.yaml").write_text("just: a dict\n")
    with pytest.raises(rv.CardError, match="missing name"):
        rv.read_card(tmp_path / "other.yaml")

    card = yaml.safe_load((MODELS / "espresso.yaml").read_text())
    card["file"] = "computer.onnx"
    shutil.copy(MODELS / "computer.onnx", tmp_path / "computer.onnx")
    (tmp_path / "espresso.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(rv.CardError, match="model for 'computer'"):
        rv.reevaluate(tmp_path / "espresso.yaml", data_dir=tmp_path / "no-data", work=tmp_path / "work")


def test_cli_reports_a_missing_card_in_one_line_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rv.main(["--name", "nothing", "--models-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no model card" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_changed_voice_split_is_detected() -> None:
    card = yaml.safe_load((MODELS / "espresso.yaml").read_text())
    voices = card["data"]["distinct_voices"]
    assert rv.same_voice_split(card, {"distinct_voices": voices})
    changed = {
        **voices,
        "kokoro": {"train": voices["kokoro"]["train"] + 1, "val": voices["kokoro"]["val"] - 1},
    }
    assert not rv.same_voice_split(card, {"distinct_voices": changed})
    assert not rv.same_voice_split({"name": "no data section"}, {"distinct_voices": voices})
