"""The wake-word network: normalise -> [causal conv] -> unidirectional GRU -> per-frame probability.

Causal by construction (a unidirectional GRU, and a convolution that only looks back),
so a frame's output depends only on the audio heard so far, and the state carried
between calls makes each streaming step cost the same forever.

The runtime sees one opaque state tensor ``[rows, 1, hidden]``. Rows ``0..layers-1``
are the GRU's hidden states; with a conv front end, the rows after them hold the last
``conv_time - 1`` normalised input frames (flattened, zero-padded to whole rows), which
the convolution needs to continue a stream exactly where the previous call stopped.
Zeros are a valid start for both (the conv then sees "average" frames before the stream).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    n_mels: int = 40
    hidden: int = 128  # 96 underfit (97% of training positives found, 90% of held-out ones)
    layers: int = 2
    dropout: float = 0.1
    # Causal 2-D conv over (time, mel) before the GRU; 0 channels = none (the GRU reads the mels).
    # Kernels shared across mel bands see a formant pattern wherever a voice puts it.
    conv_channels: int = 0
    conv_time: int = 3  # frames of context (the current one and conv_time - 1 before it)
    conv_freq: int = 5  # mel bands per kernel
    conv_freq_stride: int = 2

    @property
    def conv_bins(self) -> int:
        return (self.n_mels - self.conv_freq) // self.conv_freq_stride + 1

    @property
    def gru_input(self) -> int:
        return self.conv_channels * self.conv_bins if self.conv_channels else self.n_mels

    @property
    def context_frames(self) -> int:
        return self.conv_time - 1 if self.conv_channels else 0

    @property
    def history_rows(self) -> int:
        """State rows after the GRU's that hold the conv's frame history (0 without a conv)."""
        return math.ceil(self.context_frames * self.n_mels / self.hidden)

    @property
    def state_rows(self) -> int:
        """Rows of the state tensor: GRU layers plus the conv's frame history."""
        return self.layers + self.history_rows


class WakeWordNet(nn.Module):
    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        if config.conv_channels and (config.conv_time < 1 or config.conv_bins < 1):
            raise ValueError(f"conv kernel ({config.conv_time}, {config.conv_freq}) does not fit the input")
        self.config = config
        # Per-feature normalisation, set from training data statistics; part of the export.
        self.register_buffer("feature_mean", torch.zeros(config.n_mels))
        self.register_buffer("feature_std", torch.ones(config.n_mels))
        self.conv = (
            nn.Conv2d(
                1, config.conv_channels, (config.conv_time, config.conv_freq), (1, config.conv_freq_stride)
            )
            if config.conv_channels
            else None
        )
        self.gru = nn.GRU(
            config.gru_input,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, 1)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(self.config.state_rows, batch, self.config.hidden)

    def _front(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal conv over [history frames, x]: (GRU input [B, T, gru_input], new history rows)."""
        cfg = self.config
        context = cfg.context_frames
        past = (
            history.permute(1, 0, 2).flatten(1)[:, : context * cfg.n_mels].unflatten(1, (context, cfg.n_mels))
        )
        full = torch.cat([past, x], dim=1)  # [B, context + T, n_mels]
        y = torch.relu(self.conv(full.unsqueeze(1)))  # [B, C, T, bins]
        y = y.permute(0, 2, 1, 3).flatten(2)
        tail = full[:, full.shape[1] - context :, :].flatten(1)  # not -context: 0 would keep everything
        tail = nn.functional.pad(tail, (0, cfg.history_rows * cfg.hidden - context * cfg.n_mels))
        return y, tail.unflatten(1, (cfg.history_rows, cfg.hidden)).permute(1, 0, 2)

    def forward_outputs(
        self, features: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, T, n_mels] -> (the last GRU layer's outputs [B, T, hidden], state); training
        reads them for the domain critic (training/domain.py), the head turns them into logits."""
        x = (features - self.feature_mean) / self.feature_std
        if hidden is None:
            hidden = self.initial_state(features.shape[0]).to(features.device)
        if self.conv is None:  # the state is the GRU's alone: no slicing in the exported graph
            out, state = self.gru(x, hidden)
        else:
            layers = self.config.layers
            x, history = self._front(x, hidden[layers:])
            out, gru_state = self.gru(x, hidden[:layers].contiguous())
            state = torch.cat([gru_state, history], dim=0)
        return out, state

    def forward_logits(
        self, features: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, T, n_mels] -> (logits [B, T], state [state_rows, B, hidden])."""
        out, state = self.forward_outputs(features, hidden)
        return self.head(out).squeeze(-1), state

    def forward(self, features: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exported graph: probabilities and the next state."""
        logits, hidden_out = self.forward_logits(features, hidden)
        return torch.sigmoid(logits), hidden_out

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> str:
        """One line for the model card."""
        cfg = self.config
        conv = (
            f"causal conv {cfg.conv_channels}x({cfg.conv_time} frames, {cfg.conv_freq} mels, stride "
            f"{cfg.conv_freq_stride}), ReLU -> "
            if cfg.conv_channels
            else ""
        )
        return f"{conv}{cfg.layers}-layer unidirectional GRU ({cfg.hidden}) -> linear, sigmoid"
