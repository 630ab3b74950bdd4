"""Distillation (training/distill.py): the teacher's targets come from the daemon's own runtime, a
teacher on another front end is refused, and a student trained towards a teacher learns its
probabilities rather than the labels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from training import distill
from training import train as tr
from training.dataset import CONFUSABLE, POSITIVE, ClipArrays
from training.frontend_experiment import experiment_config, main
from training.make_model import LOGMEL, SPEECH_EMBEDDING, profile_config
from training.network import NetworkConfig, WakeWordNet
from wakeword.embedding import EmbeddingConfig
from wakeword.features import FeatureConfig
from wakeword.model import WakeWordModel

MODELS = Path(__file__).resolve().parent.parent / "models"
COMPUTER = MODELS / "computer.onnx"  # a real mean of three members on the log-mel front end


def _teacher(weight: float = 0.5) -> distill.Teacher:
    return distill.Teacher.from_file(COMPUTER, weight)


@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5])
def test_a_weight_outside_0_1_is_refused(weight: float) -> None:
    with pytest.raises(distill.TeacherError, match="distillation weight"):
        distill.Teacher.from_file(COMPUTER, weight)


def test_a_missing_or_broken_teacher_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(distill.TeacherError, match="cannot read the teacher model"):
        distill.Teacher.from_file(tmp_path / "none.onnx", 0.5)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(distill.TeacherError, match="cannot be loaded"):
        distill.load_teacher(distill.Teacher.from_file(broken, 0.5), FeatureConfig())


def test_a_teacher_on_another_front_end_is_refused() -> None:
    with pytest.raises(distill.TeacherError, match="reads another front end"):
        distill.load_teacher(_teacher(), EmbeddingConfig())
    with pytest.raises(distill.TeacherError, match="reads another front end"):
        distill.load_teacher(_teacher(), FeatureConfig(n_mels=32))
    assert distill.load_teacher(_teacher(), WakeWordModel.load(COMPUTER).features).path == COMPUTER


def test_teacher_probabilities_are_what_the_runtime_streams_from_a_fresh_state() -> None:
    model = WakeWordModel.load(COMPUTER)
    rng = np.random.default_rng(0)
    clips = (rng.normal(-6.0, 3.0, (3, 120, model.features.dim))).astype(np.float16)
    clips[1, 40:80] += 6.0  # something louder in the middle, so the outputs are not all alike
    probs = distill.teacher_probabilities(model, clips)
    assert probs.shape == (3, 120) and probs.dtype == np.float16
    for clip, got in zip(clips, probs, strict=True):
        state, pieces = model.initial_state(), []
        for start in range(0, 120, 8):  # the detector's steps of frames_per_step
            step, state = model.run(clip[start : start + 8].astype(np.float32), state)
            pieces.append(step)
        assert np.allclose(got, np.concatenate(pieces), atol=1e-3)
    assert float(np.ptp(probs.astype(np.float32))) > 1e-3  # a non-trivial output


def test_probabilities_are_cached_per_teacher_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    features = WakeWordModel.load(COMPUTER).features
    clips = np.zeros((2, 16, features.dim), dtype=np.float16)
    first = distill.cached_probabilities(_teacher(), features, clips, tmp_path, "train")
    monkeypatch.setattr(distill, "load_teacher", lambda *a: pytest.fail("recomputed a cached teacher"))
    again = distill.cached_probabilities(_teacher(), features, clips, tmp_path, "train")
    assert np.array_equal(first, again)
    cached = list(tmp_path.glob(distill.CACHE_GLOB))  # the name make_model's train stage owns
    assert len(cached) == 1 and _teacher().sha256[:16] in cached[0].name
    other = dataclasses.replace(_teacher(), sha256="0" * 64)  # another teacher file: not the cache
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        distill.cached_probabilities(other, features, clips, tmp_path, "train")


def test_batch_targets_mix_labels_and_teacher_and_keep_the_labels() -> None:
    labels = np.array([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=np.uint8)
    data = ClipArrays(np.zeros((2, 4, 3), np.float16), labels, np.ones_like(labels), [POSITIVE, CONFUSABLE])
    soft = np.array([[0.2, 0.6, 1.0, 0.0], [0.4, 0.0, 0.0, 1.0]], dtype=np.float16)
    _, got_labels, _, _, targets = tr._batch(data, np.array([1, 0]), soft, 0.25)
    assert torch.equal(got_labels, torch.from_numpy(labels.astype(np.float32)))
    expected = 0.75 * labels.astype(np.float32) + 0.25 * soft.astype(np.float32)
    assert torch.allclose(targets, torch.from_numpy(expected))
    _, plain_labels, _, _, plain = tr._batch(data, np.array([0, 1]))
    assert plain is plain_labels  # no teacher: the recipe's batch, unchanged


def test_soft_targets_do_not_move_the_positive_weighting() -> None:
    logits = torch.tensor([[0.3, -1.0, 2.0]])
    labels = torch.tensor([[0.0, 1.0, 1.0]])
    mask = torch.ones_like(labels)
    assert tr.frame_loss(logits, labels, mask, 3.0, labels) == tr.frame_loss(logits, labels, mask, 3.0)
    soft = torch.tensor([[0.1, 0.6, 0.9]])
    weights = torch.tensor([[1.0, 3.0, 3.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, soft, weight=weights, reduction="sum"
    )
    assert torch.allclose(tr.frame_loss(logits, labels, mask, 3.0, soft), expected / weights.sum())


def _toy(n: int = 64, frames: int = 20, mels: int = 8) -> ClipArrays:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((n, frames, mels)).astype(np.float16)
    zeros = np.zeros((n, frames), dtype=np.uint8)
    return ClipArrays(features, zeros, np.ones_like(zeros), [CONFUSABLE] * n)


def _mean_output(teacher: tr.TeacherTargets | None, tmp_path: Path) -> float:
    data = _toy()
    config = tr.TrainConfig(steps=150, spec_augment_p=0.0, warmup_steps=1, threads=1, seed=3, long_every=0)
    torch.manual_seed(config.seed)
    net = WakeWordNet(NetworkConfig(n_mels=8, hidden=16, layers=1, dropout=0.0))
    config = dataclasses.replace(config, batch_size=32, lr=1e-2)
    tr.train_model(net, data, _toy(0), config, tmp_path, None, teacher)
    return float(tr.predict(net, np.asarray(data.features, np.float32)).mean())


def test_a_student_learns_the_teachers_probabilities_instead_of_the_labels(tmp_path: Path) -> None:
    """All labels are 0; a teacher that says 0.4 everywhere, at weight 1, must pull the student there."""
    soft = np.full((64, 20), 0.4, dtype=np.float16)
    taught = _mean_output(tr.TeacherTargets(1.0, soft, np.zeros((0, 0), np.float16)), tmp_path / "taught")
    plain = _mean_output(None, tmp_path / "plain")
    assert plain < 0.1
    assert taught == pytest.approx(0.4, abs=0.08)


def test_a_teacher_changes_only_the_runs_teacher() -> None:
    recipe = profile_config("computer", "computer", "full", None, LOGMEL)
    config = experiment_config(
        "computer", "computer", "full", "gru", None, None, None, None, LOGMEL, teacher=_teacher(0.7)
    )
    assert config.teacher == _teacher(0.7)
    assert dataclasses.replace(config, teacher=None) == recipe
    with pytest.raises(distill.TeacherError, match="another front end"):
        experiment_config(
            "computer",
            "computer",
            "full",
            "window",
            None,
            None,
            None,
            None,
            SPEECH_EMBEDDING,
            teacher=_teacher(),
        )


def test_the_cli_names_a_missing_teacher_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["--word", "computer", "--frontend", "logmel", "--network", "gru", "--skip-synth"]
    code = main([*args, "--output-dir", str(tmp_path / "out"), "--teacher", str(tmp_path / "none.onnx")])
    assert code == 1
    assert "cannot read the teacher model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
