"""Train the GRU on widened-label clips, then mine hard negatives and fine-tune.

Loss: binary cross-entropy on every frame of every clip (masked only in the two
short ambiguous zones around the 1-run), positive frames weighted up because they
are ~4% of all frames; with ``TrainConfig.domain_weight`` > 0, plus a domain critic's
loss whose gradient reaches the GRU reversed (training/domain.py; in ``final_loss``
too). Deterministic for a given seed: clip order, SpecAugment
masks and initial weights all come from seeded generators. The schedule runs on
``progress = max(step / steps, elapsed / time_budget)``, so a busy machine ends
training early with a finished (annealed) learning rate instead of overrunning.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training import domain
from training.augment import spec_augment
from training.dataset import ClipArrays
from training.network import WakeWordNet

log = logging.getLogger(__name__)


#: The main run's resumable checkpoint in its work folder (make_model's stage owns it by this name).
TRAIN_CHECKPOINT = "train.ckpt"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 96
    long_batch_size: int = 24  # long clips are 4x longer: same frames per batch
    long_every: int = 4  # every 4th step is a batch of long streams
    lr: float = 2e-3
    min_lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-2
    pos_weight: float = 2.0
    grad_clip: float = 1.0
    spec_augment_p: float = 0.3
    spec_max_freq: int = 6  # widest mask across features (mel bands or embedding dims)
    spec_max_time: int = 12  # widest mask along time, in frames (12 log-mel frames = 120 ms)
    feature_noise: float = 0.0  # std of Gaussian noise added to normalised features while training
    # Domain-adversarial training (training/domain.py): the weight of the reversed critic gradient at
    # the end of its ramp; 0 = off (no critic, the plain wake-word loss).
    domain_weight: float = 0.0
    time_budget_s: float = 2400.0
    checkpoint_every: int = 200
    seed: int = 7
    # 2 threads: 1.33x faster per step on an idle 2-core box (measured, GRU 128). Nothing else of ours
    # runs during training; on a busy box the time budget, not the step count, ends the run.
    threads: int = 2


@dataclass(frozen=True)
class MiningConfig:
    rounds: int = 1
    stream_s: float = 30.0
    streams: int = 360  # 3 hours of freshly mixed negative audio per round
    threshold: float = 0.1  # low: collect near-misses too, not only outright false accepts
    max_windows: int = 6000
    finetune_steps: int = 500
    finetune_lr: float = 3e-4
    hard_share: float = 0.25  # share of each fine-tuning batch drawn from mined windows
    time_budget_s: float = 600.0
    seed: int = 99


def set_normalisation(net: WakeWordNet, data: ClipArrays, sample: int = 2000, seed: int = 0) -> None:
    """Feature mean/std from training clips (the network normalises inside the exported graph)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data), size=min(sample, len(data)), replace=False))
    feats = np.asarray(data.features[idx], dtype=np.float32).reshape(-1, data.features.shape[-1])
    net.feature_mean.copy_(torch.from_numpy(feats.mean(axis=0)))
    net.feature_std.copy_(torch.from_numpy(np.maximum(feats.std(axis=0), 1e-3)))


def frame_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    pos_weight: float,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted BCE towards ``targets`` (default: the labels); the 1-labelled frames weigh
    ``pos_weight`` whatever the target (a teacher's soft target does not move the weighting)."""
    weights = mask * torch.where(labels > 0.5, pos_weight, 1.0)
    target = labels if targets is None else targets
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weights, reduction="sum")
    return loss / weights.sum().clamp(min=1.0)


#: (features, labels, loss mask, per-clip domain label for the critic, per-frame targets)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _batch(
    data: ClipArrays, idx: np.ndarray, teacher: np.ndarray | None = None, weight: float = 0.0
) -> Batch:
    """One batch; the targets are the labels, or with a ``teacher`` [N, T] its probabilities mixed in
    at ``weight`` (training/distill.py)."""
    idx = np.sort(idx)
    labels = torch.from_numpy(np.asarray(data.labels[idx], dtype=np.float32))
    targets = labels
    if teacher is not None:
        soft = torch.from_numpy(np.asarray(teacher[idx], dtype=np.float32))
        targets = (1.0 - weight) * labels + weight * soft
    return (
        torch.from_numpy(np.asarray(data.features[idx], dtype=np.float32)),
        labels,
        torch.from_numpy(np.asarray(data.mask[idx], dtype=np.float32)),
        domain.domain_labels([data.kinds[i] for i in idx]),
        targets,
    )


def _lr(step: int, progress: float, base: float, floor: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


BatchFn = Callable[[int, np.random.Generator], Batch]


def run_training(
    net: WakeWordNet,
    next_batch: BatchFn,
    steps: int,
    lr: float,
    config: TrainConfig,
    checkpoint: Path,
    time_budget_s: float,
    desc: str,
    val: ClipArrays | None = None,
) -> dict:
    """The loop shared by training and fine-tuning; resumes from ``checkpoint`` if it exists."""
    torch.set_num_threads(config.threads)
    critic = domain.DomainCritic(net.config.hidden) if config.domain_weight > 0 else None
    params = list(net.parameters()) + (list(critic.parameters()) if critic else [])
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    state = {"step": 0, "elapsed": 0.0, "losses": [], "critic_accuracy": []}
    if checkpoint.exists():
        blob = torch.load(checkpoint, map_location="cpu", weights_only=False)
        net.load_state_dict(blob["net"])
        if critic is not None:
            critic.load_state_dict(blob["critic"])
        optimiser.load_state_dict(blob["optimiser"])
        state = {"critic_accuracy": [], **blob["state"]}
        log.info("%s: resuming at step %d", desc, state["step"])
    start_time = time.monotonic() - state["elapsed"]
    net.train()
    bar = tqdm(total=steps, initial=state["step"], desc=desc, unit="step", mininterval=10)
    running = None
    accuracies: list[float] = []
    while state["step"] < steps:
        step = state["step"]
        elapsed = time.monotonic() - start_time
        progress = max(step / steps, elapsed / time_budget_s)
        if progress >= 1.0:
            log.warning("%s: time budget %.0f s reached at step %d of %d", desc, time_budget_s, step, steps)
            break
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, progress, lr, config.min_lr, config.warmup_steps)
        # Per-step generators: a resumed run draws exactly what an uninterrupted one would.
        rng = np.random.default_rng([config.seed, step])
        generator = torch.Generator().manual_seed(config.seed * 1000003 + step)
        torch.manual_seed(config.seed * 7919 + step)  # GRU dropout
        feats, labels, mask, domains, targets = next_batch(step, rng)
        outputs, _ = _masked_forward(net, feats, generator, config)
        logits = net.head(outputs).squeeze(-1)
        loss = frame_loss(logits, labels, mask, config.pos_weight, targets)
        if critic is not None:
            scale = domain.reversal_scale(progress, config.domain_weight)
            loss = loss + domain.domain_loss(critic, outputs, domains, scale)
            accuracy = domain.critic_accuracy(critic, outputs, domains)
            if accuracy is not None:
                accuracies.append(accuracy)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimiser.step()
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        state["step"] = step + 1
        state["elapsed"] = time.monotonic() - start_time
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        if state["step"] % 50 == 0:
            state["losses"].append((state["step"], running))
            if accuracies:  # how well the critic tells real voices from TTS ones (0.5: not at all)
                state["critic_accuracy"].append((state["step"], round(float(np.mean(accuracies)), 3)))
                accuracies = []
        if state["step"] % config.checkpoint_every == 0:
            _save(checkpoint, net, optimiser, state, critic)
    bar.close()
    _save(checkpoint, net, optimiser, state, critic)
    net.eval()
    summary = {"steps": state["step"], "seconds": round(state["elapsed"], 1), "final_loss": running}
    if state.get("critic_accuracy"):
        summary["critic_accuracy_last"] = state["critic_accuracy"][-1][1]
    if val is not None:
        summary.update(validate(net, val))
    log.info("%s: %s", desc, summary)
    return summary


def _masked_forward(
    net: WakeWordNet, feats: torch.Tensor, generator: torch.Generator, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """SpecAugment (and optional Gaussian noise) in the normalised domain (0 = the training mean),
    then the forward pass up to the GRU's outputs."""
    if config.spec_augment_p <= 0 and config.feature_noise <= 0:
        return net.forward_outputs(feats)
    normed = (feats - net.feature_mean) / net.feature_std
    if config.spec_augment_p > 0:
        normed = spec_augment(
            normed, generator, config.spec_max_freq, config.spec_max_time, p=config.spec_augment_p
        )
    if config.feature_noise > 0:
        normed = normed + config.feature_noise * torch.randn(normed.shape, generator=generator)
    return net.forward_outputs(normed * net.feature_std + net.feature_mean)


def _save(
    path: Path,
    net: WakeWordNet,
    optimiser: torch.optim.Optimizer,
    state: dict,
    critic: domain.DomainCritic | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    blob = {"net": net.state_dict(), "optimiser": optimiser.state_dict(), "state": state}
    if critic is not None:
        blob["critic"] = critic.state_dict()
    torch.save(blob, tmp)
    tmp.replace(path)


@torch.no_grad()
def predict(net: WakeWordNet, features: np.ndarray, batch: int = 64) -> np.ndarray:
    """Per-frame probabilities for [N, T, F] features (the training graph, for mining and monitoring)."""
    net.eval()
    out = np.zeros(features.shape[:2], dtype=np.float32)
    for start in range(0, len(features), batch):
        x = torch.from_numpy(np.asarray(features[start : start + batch], dtype=np.float32))
        logits, _ = net.forward_logits(x)
        out[start : start + batch] = torch.sigmoid(logits).numpy()
    return out


def validate(net: WakeWordNet, val: ClipArrays) -> dict:
    """Clip-level sanity figures on the validation clips (not the shipped metric: that is evaluate.py)."""
    probs = predict(net, val.features)
    positive = val.labels.max(axis=1) > 0
    peak = probs.max(axis=1)
    in_window = np.where(val.labels > 0, probs, 0.0).max(axis=1)
    return {
        "val_positive_hit_rate@0.5": round(float((in_window[positive] >= 0.5).mean()), 4)
        if positive.any()
        else None,
        "val_negative_fire_rate@0.5": round(float((peak[~positive] >= 0.5).mean()), 4),
    }


@dataclass(frozen=True)
class TeacherTargets:
    """A teacher's per-frame probabilities for the training clips and streams (training/distill.py)."""

    weight: float
    train: np.ndarray  # [clips, T]
    train_long: np.ndarray  # [streams, T_long]


def train_model(
    net: WakeWordNet,
    train: ClipArrays,
    train_long: ClipArrays,
    config: TrainConfig,
    work_dir: Path,
    val: ClipArrays | None = None,
    teacher: TeacherTargets | None = None,
) -> dict:
    """Main training run (short clips, with every ``long_every``-th batch made of long streams)."""
    torch.manual_seed(config.seed)
    weight = teacher.weight if teacher else 0.0
    soft_train, soft_long = (teacher.train, teacher.train_long) if teacher else (None, None)

    def next_batch(step: int, rng: np.random.Generator):  # noqa: ANN202
        if len(train_long) and config.long_every and step % config.long_every == config.long_every - 1:
            idx = rng.choice(len(train_long), config.long_batch_size, replace=False)
            return _batch(train_long, idx, soft_long, weight)
        return _batch(train, rng.choice(len(train), config.batch_size, replace=False), soft_train, weight)

    return run_training(
        net,
        next_batch,
        config.steps,
        config.lr,
        config,
        work_dir / TRAIN_CHECKPOINT,
        config.time_budget_s,
        "train",
        val,
    )


def finetune_with_hard_negatives(
    net: WakeWordNet,
    train: ClipArrays,
    hard: ClipArrays,
    config: TrainConfig,
    mining: MiningConfig,
    checkpoint: Path,
    val: ClipArrays | None = None,
    teacher: TeacherTargets | None = None,
) -> dict:
    """Continue training with a share of every batch taken from mined false alarms (all-zero targets,
    also under a teacher: they are the student's own false alarms)."""
    n_hard = max(1, int(config.batch_size * mining.hard_share)) if len(hard) else 0
    weight = teacher.weight if teacher else 0.0
    soft_train = teacher.train if teacher else None

    def next_batch(step: int, rng: np.random.Generator):  # noqa: ANN202
        idx = rng.choice(len(train), config.batch_size - n_hard, replace=False)
        base = _batch(train, idx, soft_train, weight)
        if not n_hard:
            return base
        extra = _batch(hard, rng.choice(len(hard), n_hard, replace=len(hard) < n_hard))
        return tuple(torch.cat([a, b]) for a, b in zip(base, extra, strict=True))

    cfg = TrainConfig(**{**asdict(config), "warmup_steps": 20})
    return run_training(
        net,
        next_batch,
        mining.finetune_steps,
        mining.finetune_lr,
        cfg,
        checkpoint,
        mining.time_budget_s,
        "finetune",
        val,
    )


def mine_windows(
    net: WakeWordNet,
    stream_features: np.ndarray,
    window_frames: int,
    threshold: float,
    rng: np.random.Generator,
    max_windows: int,
    frames_per_second: float = 100.0,
) -> tuple[np.ndarray, dict]:
    """Windows of negative streams [N, T, F] that end shortly after a frame the model fires on.

    One window per burst (peaks at least a second apart), ending 0.1-0.4 s after the peak so
    the model is taught to stay quiet through what made it fire and a little beyond.
    """
    gap = max(1, round(frames_per_second))
    after = (max(1, round(0.1 * frames_per_second)), max(2, round(0.4 * frames_per_second)))
    probs = predict(net, stream_features, batch=16)
    windows = []
    fired_frames = int((probs >= threshold).sum())
    for s in range(len(stream_features)):
        above = np.nonzero(probs[s] >= threshold)[0]
        last = -(10**9)
        for t in above:
            if t - last < gap:
                continue
            last = t
            end = min(stream_features.shape[1], int(t) + int(rng.integers(*after)))
            start = end - window_frames
            if start < 0:
                continue
            windows.append(np.asarray(stream_features[s, start:end], dtype=np.float16))
    stats = {"bursts": len(windows), "frames_above": fired_frames, "stream_frames": int(probs.size)}
    if len(windows) > max_windows:
        keep = np.sort(rng.choice(len(windows), max_windows, replace=False))
        windows = [windows[i] for i in keep]
    if not windows:
        return np.zeros((0, window_frames, stream_features.shape[2]), dtype=np.float16), stats
    return np.stack(windows), stats
