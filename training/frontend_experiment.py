"""Re-run the training experiments of README "Two front ends" (runs 4-9) and "Domain-adversarial".

Not a shipped recipe: each variant here was judged on real people and not kept (distillation too:
bench/results/distill-rule.md), and this module exists so its figures can be
reproduced rather than trusted. It changes only the network, the
hard-negative mining, the training seed, the domain-adversarial weight, the share of band-limited
clips or the engines' shares of positive draws of ``make_model``'s recipe for a front end
(speech-embedding unless ``--frontend logmel``), trains it on a topped-up copy of the data
(``--data-dir``), or distils a teacher model's probabilities into it (``--teacher``); labels and
evaluation are the recipe's own, so a run is paired with
``bench.real_people --also-model models/computer.onnx``.

    python -m training.frontend_experiment --word computer --network window --mining-rounds 6 \\
        --mining-hours 6 --output-dir /tmp/models-run5 --skip-synth
    python -m training.frontend_experiment --word computer --frontend logmel --network gru \\
        --domain-weight 0.3 --output-dir /tmp/models-dann --skip-synth
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from training import distill
from training.make_model import (
    FRONTENDS,
    LOGMEL,
    REPO_ROOT,
    SPEECH_EMBEDDING,
    RunConfig,
    _slug,
    default_data_dir,
    make_model,
    profile_config,
)
from training.network import NetworkConfig
from training.synthesize_data import ALL_ENGINES
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
    frontend_name: str = SPEECH_EMBEDDING,
    domain_weight: float | None = None,
    threads: int | None = None,
    band_limit_p: float | None = None,
    positive_shares: dict[str, float] | None = None,
    teacher: distill.Teacher | None = None,
) -> RunConfig:
    """A front end's recipe with the network, mining, training seed, domain-adversarial weight and/or
    share of band-limited clips and/or the engines' shares of positive draws swapped (None keeps the
    recipe's)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r} ({' or '.join(NETWORKS)})")
    if frontend_name == LOGMEL and network == "window":
        raise ValueError(
            "the window network reads speech embeddings: use --network gru with --frontend logmel"
        )
    config = profile_config(word, name, profile, train_minutes, frontend_name)
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
    if domain_weight is not None:
        if domain_weight < 0:
            raise ValueError("--domain-weight must be 0 or more")
        train = dataclasses.replace(train, domain_weight=domain_weight)
    if threads is not None:
        if threads < 1:
            raise ValueError("--threads must be at least 1")
        train = dataclasses.replace(train, threads=threads)
    dataset = config.dataset
    if band_limit_p is not None:
        if not 0.0 <= band_limit_p <= 1.0:
            raise ValueError("--band-limit-p must be between 0 and 1")
        dataset = dataclasses.replace(
            dataset, augment=dataclasses.replace(dataset.augment, band_limit_p=band_limit_p)
        )
    if positive_shares:
        unknown = sorted(set(positive_shares) - ALL_ENGINES)
        if unknown:
            raise ValueError(
                f"--positive-share names unknown engines {unknown} (known: {', '.join(sorted(ALL_ENGINES))})"
            )
        if any(not 0.0 <= v <= 1.0 for v in positive_shares.values()) or sum(positive_shares.values()) > 1.0:
            raise ValueError("--positive-share values must be between 0 and 1 and add up to at most 1")
        dataset = dataclasses.replace(dataset, positive_engine_shares=tuple(sorted(positive_shares.items())))
    if teacher is not None:
        distill.load_teacher(teacher, config.features)  # refuse another front end before any training
    return dataclasses.replace(config, mining=mining, train=train, dataset=dataset, teacher=teacher)


def parse_share(text: str) -> tuple[str, float]:
    """``ENGINE=SHARE`` from the command line."""
    engine, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return engine.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ENGINE=SHARE, e.g. piper=0.2, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="computer")
    parser.add_argument("--name", help="model file name (default: the word)")
    parser.add_argument("--profile", choices=("full", "smoke"), default="full")
    parser.add_argument("--frontend", choices=FRONTENDS, default=SPEECH_EMBEDDING)
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        help="window (speech-embedding only; the default there) or gru (the front end's recipe network)",
    )
    parser.add_argument("--mining-rounds", type=int, help="hard-negative mining rounds (recipe: 2)")
    parser.add_argument("--mining-hours", type=float, help="hours of negative streams per round (recipe: 3)")
    parser.add_argument("--train-minutes", type=float)
    parser.add_argument(
        "--train-seed",
        type=int,
        help=f"seed of weights, clip order and mining streams (recipe: {TrainConfig().seed}); the data stay "
        "the same, so two seeds measure how much one recipe varies from run to run",
    )
    parser.add_argument(
        "--domain-weight",
        type=float,
        help="domain-adversarial training against real voices (training/domain.py): the reversed critic "
        "gradient's final weight (recipe: 0, off)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads while training (recipe: 2 for log-mel, 1 for speech-embedding); 1 lets two "
        "runs share the 2-core machine without spin-waiting",
    )
    parser.add_argument(
        "--band-limit-p",
        type=float,
        help="share of training clips sent through a 2.5-5 kHz narrow-band chain after the noise floor "
        "(training.augment.band_limit; recipe: 0, off)",
    )
    parser.add_argument(
        "--positive-share",
        type=parse_share,
        action="append",
        metavar="ENGINE=SHARE",
        help="fixed share of positive draws for one engine (repeatable; the other engines share the rest "
        "uniformly by clip; replaces the recipe's espeak-ng share of 0.45), e.g. --positive-share "
        "espeak-ng=0.45 --positive-share kokoro=0.1",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="distil this model (e.g. a training.ensemble mean on the same front end): its per-frame "
        "probabilities enter every training target (training/distill.py)",
    )
    parser.add_argument(
        "--distill-weight",
        type=float,
        default=0.5,
        help="the teacher's share of each frame's target, in (0, 1] (with --teacher; default 0.5)",
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, help="default: OUTPUT_DIR/work")
    parser.add_argument("--skip-synth", action="store_true", help="use the manifest already synthesised")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="synthesised clips to train on (default: the profile's, training/work/WORD/data); e.g. a copy "
        "topped up by `training.synthesize_data --profile full-varied`; needs --skip-synth",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = args.name or _slug(args.word)
    shared = [engine for engine, _ in args.positive_share or []]
    if len(shared) != len(set(shared)):
        parser.error("--positive-share names an engine more than once")
    if args.data_dir is not None and not args.skip_synth:
        # The synthesis stage renders the recipe's profile: into another folder it would only mix plans.
        parser.error("--data-dir needs --skip-synth (synthesise that folder with training.synthesize_data)")
    try:
        config = experiment_config(
            args.word,
            name,
            args.profile,
            args.network or ("window" if args.frontend == SPEECH_EMBEDDING else "gru"),
            args.mining_rounds,
            args.mining_hours,
            args.train_minutes,
            args.train_seed,
            args.frontend,
            args.domain_weight,
            args.threads,
            args.band_limit_p,
            dict(args.positive_share) if args.positive_share else None,
            distill.Teacher.from_file(args.teacher, args.distill_weight) if args.teacher else None,
        )
        card = make_model(
            config,
            args.output_dir,
            args.work_dir or args.output_dir / "work",
            args.data_dir or default_data_dir(args.word, args.profile),
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
