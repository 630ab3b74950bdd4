"""Domain-adversarial training: make the GRU's view of a real voice look like its view of a TTS voice.

Why: a model trained on synthetic speech misses real people it should hear (README, "Does synthetic
speech carry over to real people?"). The dataset already holds real people's voices, as negatives:
``real_speech`` clips place one real recording of another wake word where a word goes, exactly as
``confusable`` clips place one synthetic sound-alike. A small critic reads the GRU's outputs over such
a clip and guesses "real" or "synthetic"; its gradient reaches the GRU *reversed* (Ganin & Lempitsky,
2015), so training rewards features that do not tell a real voice from a TTS voice while the wake-word
loss keeps them useful. Only negatives of both kinds are compared, so the critic cannot learn the
difference between the wake word and everything else.

The critic is training-only: it reads the GRU's outputs and is never exported, so the shipped graph,
its inputs, outputs and cost are exactly those of a model trained without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.dataset import CONFUSABLE, REAL_SPEECH

#: Per-clip domain labels: 1 = a real voice, 0 = a synthetic one of the same shape, -1 = not compared.
REAL, SYNTHETIC, IGNORED = 1.0, 0.0, -1.0
#: ClipArrays kinds compared (both are one word placed the same way, with the same room and microphone).
REAL_KINDS = frozenset({REAL_SPEECH})
SYNTHETIC_KINDS = frozenset({CONFUSABLE})


def domain_labels(kinds: Sequence[str]) -> torch.Tensor:
    """1 / 0 / -1 per clip kind (see REAL, SYNTHETIC, IGNORED)."""
    return torch.tensor(
        [REAL if k in REAL_KINDS else SYNTHETIC if k in SYNTHETIC_KINDS else IGNORED for k in kinds],
        dtype=torch.float32,
    )


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -scale."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    return _ReverseGradient.apply(x, scale)


class DomainCritic(nn.Module):
    """GRU outputs [B, T, H] -> one real-vs-synthetic logit per clip (mean and max over time, so the
    word counts wherever it falls in the clip)."""

    def __init__(self, hidden: int, width: int = 64) -> None:
        super().__init__()
        self.frame = nn.Linear(hidden, width)
        self.out = nn.Linear(2 * width, 1)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.frame(outputs))
        return self.out(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=-1)).squeeze(-1)


def reversal_scale(progress: float, weight: float) -> float:
    """DANN's ramp: 0 at the start (the critic learns first), ``weight`` by the end of training."""
    return weight * (2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0)


def domain_loss(
    critic: DomainCritic, outputs: torch.Tensor, labels: torch.Tensor, scale: float
) -> torch.Tensor:
    """Class-balanced BCE of the critic on the compared clips; the GRU receives -scale x its gradient.
    0 (with a graph) when a batch holds no clip of one of the two domains."""
    chosen = labels >= 0
    real = labels == REAL
    if not bool((chosen & real).any()) or not bool((chosen & ~real).any()):
        return outputs.sum() * 0.0
    logits = critic(reverse_gradient(outputs[chosen], scale))
    target = labels[chosen]
    n_real = float(target.sum())
    n_synthetic = float(len(target)) - n_real
    weights = torch.where(target > 0.5, 0.5 / n_real, 0.5 / n_synthetic)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weights, reduction="sum")


def critic_accuracy(critic: DomainCritic, outputs: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Balanced accuracy of the critic on one batch (0.5 = the GRU hides the domain); None if unmeasurable."""
    chosen = labels >= 0
    if not bool(chosen.any()):
        return None
    with torch.no_grad():
        guess = (critic(outputs[chosen]) > 0).float()
    target = labels[chosen]
    rates = [
        float((guess[target == c] == c).float().mean()) for c in (REAL, SYNTHETIC) if (target == c).any()
    ]
    return sum(rates) / len(rates) if len(rates) == 2 else None
