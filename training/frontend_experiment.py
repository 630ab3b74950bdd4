"""Re-run the speech-embedding experiments of README "Two front ends" (runs 4-6).

Not a shipped recipe: each variant here was judged on real people and not kept, and this module
exists so its figures can be reproduced rather than trusted. It changes only the network and the
hard-negative mining of ``make_model``'s speech-embedding recipe; data, labels and evaluation are
the recipe's own, so a run is paired with ``bench.real_people --also-model models/computer.onnx``.

    python -m training.frontend_experiment --word computer --network window --mining-rounds 6 \\
        --mining-hours 6 --output-dir /tmp/models-run5 --skip-synth
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from training.make_model import (
    REPO_ROOT,
    SPEECH_EMBEDDING,
    RunConfig,
    _slug,
    default_data_dir,
    make_model,
    profile_config,
)
from training.network import NetworkConfig
from training.train import TrainConfig

#: openWakeWord's shape on the embedding: a causal conv whose kernel spans the last 16 embeddings
#: (1.28 s) and all 96 dims, so each of its 128 channels is a window detector, then a GRU of 64.
WINDOW_NETWORK = NetworkConfig(
    n_mels=96,
    hidden=64,
    layers=1,
    dropout=0.0,
    conv_channels=128,
    conv_time=16,
    conv_freq=96,
    conv_freq_stride=1,
)

NETWORKS = ("gru", "window")


def experiment_config(
    word: str,
    name: str,
    profile: str,
    network: str,
    mining_rounds: int | None,
    mining_hours: float | None,
    train_minutes: float | None,
    train_seed: int | None = None,
) -> RunConfig:
    """The speech-embedding recipe with the network, mining and/or training seed swapped (None keeps
    the recipe's)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r} ({' or '.join(NETWORKS)})")
    config = profile_config(word, name, profile, train_minutes, SPEECH_EMBEDDING)
    if network == "window":
        config = dataclasses.replace(config, network=WINDOW_NETWORK)
    mining = config.mining
    if mining_rounds is not None:
        if mining_rounds < 1:
            raise ValueError("--mining-rounds must be at least 1")
        # Each round fine-tunes for longer than the recipe's 500 steps: it has more mined windows.
        mining = dataclasses.replace(
            mining,
            rounds=mining_rounds,
            finetune_steps=max(mining.finetune_steps, 800) if profile == "full" else mining.finetune_steps,
            time_budget_s=max(mining.time_budget_s, 500.0 * mining_rounds),
        )
    if mining_hours is not None:
        if mining_hours <= 0:
            raise ValueError("--mining-hours must be positive")
        mining = dataclasses.replace(mining, streams=max(1, round(mining_hours * 3600.0 / mining.stream_s)))
    train = config.train
    if train_seed is not None and train_seed != train.seed:
        # Weights, clip order, SpecAugment masks and the mined streams change; the dataset does not.
        train = dataclasses.replace(train, seed=train_seed)
        mining = dataclasses.replace(mining, seed=mining.seed + 1000 * train_seed)
    return dataclasses.replace(config, mining=mining, train=train)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="computer")
    parser.add_argument("--name", help="model file name (default: the word)")
    parser.add_argument("--profile", choices=("full", "smoke"), default="full")
    parser.add_argument("--network", choices=NETWORKS, default="window")
    parser.add_argument("--mining-rounds", type=int, help="hard-negative mining rounds (recipe: 2)")
    parser.add_argument("--mining-hours", type=float, help="hours of negative streams per round (recipe: 3)")
    parser.add_argument("--train-minutes", type=float)
    parser.add_argument(
        "--train-seed",
        type=int,
        help=f"seed of weights, clip order and mining streams (recipe: {TrainConfig().seed}); the data stay "
        "the same, so two seeds measure how much one recipe varies from run to run",
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, help="default: OUTPUT_DIR/work")
    parser.add_argument("--skip-synth", action="store_true", help="use the manifest already synthesised")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = args.name or _slug(args.word)
    try:
        config = experiment_config(
            args.word,
            name,
            args.profile,
            args.network,
            args.mining_rounds,
            args.mining_hours,
            args.train_minutes,
            args.train_seed,
        )
        card = make_model(
            config,
            args.output_dir,
            args.work_dir or args.output_dir / "work",
            default_data_dir(args.word, args.profile),
            args.skip_synth,
        )
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{card['file']}: {card['metrics'].get('frr_at_fa_per_hour')}")
    model = args.output_dir / f"{name}.onnx"
    shipped = REPO_ROOT / "models" / f"{args.word}.onnx"
    print(f"next: python -m bench.real_people --word {args.word} --model {model} --also-model {shipped}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
