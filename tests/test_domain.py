"""Domain-adversarial training (training/domain.py): labels, the reversed gradient, the critic in the
training loop, and that nothing of it reaches the exported model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training import domain
from training import train as tr
from training.dataset import CONFUSABLE, POSITIVE, REAL_SPEECH, ClipArrays
from training.network import NetworkConfig, WakeWordNet


def test_only_real_and_synthetic_negatives_of_one_shape_are_compared() -> None:
    labels = domain.domain_labels([REAL_SPEECH, CONFUSABLE, POSITIVE, "speech", "hard_negative"])
    assert labels.tolist() == [domain.REAL, domain.SYNTHETIC, domain.IGNORED, domain.IGNORED, domain.IGNORED]


def test_reversed_gradient_is_negated_and_scaled() -> None:
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = domain.reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [-0.25, -0.5, -0.75]


def test_reversal_ramps_from_zero_to_the_weight() -> None:
    values = [domain.reversal_scale(p, 0.4) for p in np.linspace(0.0, 1.0, 11)]
    assert values[0] == 0.0
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(0.4, rel=1e-3)


def test_critic_and_gru_are_pulled_opposite_ways() -> None:
    torch.manual_seed(0)
    critic = domain.DomainCritic(hidden=4, width=8)
    labels = torch.tensor([domain.REAL, domain.SYNTHETIC, domain.IGNORED])
    outputs = torch.randn(3, 5, 4, requires_grad=True)
    domain.domain_loss(critic, outputs, labels, scale=1.0).backward()
    reversed_grad = outputs.grad.clone()
    assert torch.all(reversed_grad[2] == 0)  # an ignored clip teaches nothing

    outputs.grad = None
    critic.zero_grad()
    plain = critic(outputs[:2])
    torch.nn.functional.binary_cross_entropy_with_logits(
        plain, labels[:2], weight=torch.tensor([0.5, 0.5]), reduction="sum"
    ).backward()
    assert torch.allclose(reversed_grad[:2], -outputs.grad[:2], atol=1e-6)


def test_a_batch_without_both_domains_adds_no_loss() -> None:
    critic = domain.DomainCritic(hidden=4)
    outputs = torch.randn(2, 5, 4, requires_grad=True)
    loss = domain.domain_loss(critic, outputs, torch.tensor([domain.REAL, domain.IGNORED]), 1.0)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still part of the graph: the training step needs no special case
    assert torch.all(outputs.grad == 0)


def _toy_clips(n: int = 64, frames: int = 30, mels: int = 8, seed: int = 0) -> ClipArrays:
    """Real clips carry a constant offset in the first band, a cue a free critic finds at once."""
    rng = np.random.default_rng(seed)
    kinds = [REAL_SPEECH if i % 2 else CONFUSABLE for i in range(n)]
    features = rng.standard_normal((n, frames, mels)).astype(np.float32)
    features[1::2, :, 0] += 3.0
    zeros = np.zeros((n, frames), dtype=np.uint8)
    return ClipArrays(features.astype(np.float16), zeros, np.ones_like(zeros), kinds)


class _Interrupted(Exception):
    pass


def _train(
    data: ClipArrays, config: tr.TrainConfig, checkpoint: Path, steps: int, stop_at: int | None = None
) -> tuple[WakeWordNet, dict]:
    torch.manual_seed(config.seed)
    net = WakeWordNet(NetworkConfig(n_mels=8, hidden=16, layers=1, dropout=0.0))

    def next_batch(step: int, rng: np.random.Generator) -> tr.Batch:
        if step == stop_at:
            raise _Interrupted
        return tr._batch(data, rng.choice(len(data), 32, replace=False))

    summary = tr.run_training(net, next_batch, steps, 1e-2, config, checkpoint, 1e9, "toy")
    return net, summary


def test_training_with_a_critic_logs_its_accuracy_saves_it_and_resumes(tmp_path: Path) -> None:
    data = _toy_clips()
    config = tr.TrainConfig(
        domain_weight=0.5, spec_augment_p=0.0, warmup_steps=1, checkpoint_every=10, threads=1, seed=3
    )
    whole, summary = _train(data, config, tmp_path / "a.ckpt", 100)
    blob = torch.load(tmp_path / "a.ckpt", weights_only=False)
    accuracies = [a for _, a in blob["state"]["critic_accuracy"]]
    assert len(accuracies) == 2 and summary["critic_accuracy_last"] == accuracies[-1]
    assert "critic" in blob

    # Interrupted after step 60 and resumed, the run ends exactly where the uninterrupted one did:
    # the critic's weights are in the checkpoint too.
    with pytest.raises(_Interrupted):
        _train(data, config, tmp_path / "b.ckpt", 100, stop_at=60)
    resumed, _ = _train(data, config, tmp_path / "b.ckpt", 100)
    for (name, a), (_, b) in zip(resumed.state_dict().items(), whole.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_the_critic_learns_the_domain_when_nothing_pushes_back(tmp_path: Path) -> None:
    """With a weight too small to matter the critic must find the offset cue: proves it is trained."""
    config = tr.TrainConfig(
        domain_weight=1e-9, spec_augment_p=0.0, warmup_steps=1, checkpoint_every=1000, threads=1, seed=3
    )
    _, summary = _train(_toy_clips(), config, tmp_path / "c.ckpt", 150)
    assert summary["critic_accuracy_last"] > 0.9


def test_without_a_weight_there_is_no_critic_and_the_export_is_unchanged(tmp_path: Path) -> None:
    config = tr.TrainConfig(spec_augment_p=0.0, warmup_steps=1, threads=1, seed=3)
    net, summary = _train(_toy_clips(), config, tmp_path / "d.ckpt", 5)
    assert "critic_accuracy_last" not in summary
    assert "critic" not in torch.load(tmp_path / "d.ckpt", weights_only=False)
    # The critic is never part of the network: the same parameters as a plain net.
    assert net.parameter_count() == WakeWordNet(net.config).parameter_count()
