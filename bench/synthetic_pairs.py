"""Models of one word, paired clip by clip on the same held-out synthetic clips:
``python -m bench.synthetic_pairs --word espresso --model models/espresso.onnx --also-model NEW.onnx``.

A word with no real recordings (espresso) can only be judged on held-out synthetic voices, and two
model cards each give one rate from separate evaluation runs. Here every model hears the same clips
(``training.evaluate.build_items``: held-out positives at each SNR, negative streams, sound-alikes,
real people saying other words), so a difference of a few points can be tested against the draw of
clips: per positive clip, which model heard it (exact McNemar, as ``bench.real_people`` does for
real people).

Operating points, per model: its card default (the threshold and patience in its ONNX metadata), and
at each false-accept target the lowest threshold (at the card's patience) whose false accepts on the
shared negative streams stay at or under the target, the rule ``training.evaluate`` uses for its
``frr_at_fa_per_hour``. Probabilities come from ``training.evaluate.stream_probabilities``, the
Detector's own computation, and detections from the runtime ``Debouncer``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import RESULTS_DIR, git_commit
from bench.real_people import bits, mcnemar_exact, wilson

if TYPE_CHECKING:  # training/ is imported where it is used: it pulls in the training stack
    from training.evaluate import EvalConfig, Item
    from wakeword.metadata import DetectorSettings
    from wakeword.model import WakeWordModel

log = logging.getLogger("bench.synthetic_pairs")

FA_TARGETS = (0.5, 1.0)
#: The evaluation items scored here (the dense streams and training-voice positives are the card's).
SCORED_KINDS = ("positive", "negative_stream", "confusable", "real_speech")
DEFAULT = "default"


@dataclass
class Outcome:
    """One model at one detector setting, per clip."""

    threshold: float
    patience_frames: int
    fa_per_hour: float
    missed: list[bool]  # positives at SNR >= the evaluation's target SNR, in item order
    missed_all: list[bool]  # every positive
    sound_alikes_fired: list[bool]
    real_speech_fired: list[bool]

    def summary(self) -> dict:
        n = len(self.missed)
        return {
            "threshold": self.threshold,
            "patience_frames": self.patience_frames,
            "fa_per_hour": round(self.fa_per_hour, 3),
            "missed_snr_ge_5db": _rate(self.missed),
            "missed_snr_ge_5db_ci95": wilson(sum(self.missed), n),
            "missed_all": _rate(self.missed_all),
            "sound_alikes_fired": _rate(self.sound_alikes_fired),
            "real_speech_fired": _rate(self.real_speech_fired),
            # per clip, in item order (1 = missed / fired): another run on the same clips pairs with these
            "missed_snr_ge_5db_bits": bits(self.missed),
            "sound_alikes_fired_bits": bits(self.sound_alikes_fired),
        }


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def outcome(
    model: WakeWordModel,
    items: list[Item],
    probs: list[np.ndarray],
    settings: DetectorSettings,
    config: EvalConfig,
) -> Outcome:
    """Detections of ``model`` at ``settings`` over every item, reduced to per-clip flags."""
    from training.evaluate import debounce, positive_hit

    detections = [debounce(model, settings, p) for p in probs]
    by_kind: dict[str, list] = {}
    for it, d in zip(items, detections, strict=True):
        by_kind.setdefault(it.kind, []).append((it, d))
    positives = by_kind.get("positive", [])
    missed_all = [positive_hit(it, d, config.accept_after_s) is None for it, d in positives]
    streams = by_kind.get("negative_stream", [])
    at_target = [it.snr_db >= config.target_min_snr_db for it, _ in positives]
    return Outcome(
        threshold=settings.threshold,
        patience_frames=settings.patience_frames,
        fa_per_hour=sum(len(d) for _, d in streams) / sum(it.hours for it, _ in streams),
        missed=[m for m, counted in zip(missed_all, at_target, strict=True) if counted],
        missed_all=missed_all,
        sound_alikes_fired=[len(d) > 0 for _, d in by_kind.get("confusable", [])],
        real_speech_fired=[len(d) > 0 for _, d in by_kind.get("real_speech", [])],
    )


def stream_fa_rates(
    model: WakeWordModel,
    items: list[Item],
    probs: list[np.ndarray],
    base: DetectorSettings,
    config: EvalConfig,
) -> dict[float, float]:
    """False accepts per hour on the negative streams at every threshold of the evaluation grid,
    at ``base``'s patience."""
    from training.evaluate import debounce

    streams = [p for it, p in zip(items, probs, strict=True) if it.kind == "negative_stream"]
    hours = sum(it.hours for it in items if it.kind == "negative_stream")
    return {
        t: sum(len(debounce(model, replace(base, threshold=t), p)) for p in streams) / hours
        for t in config.thresholds
    }


def lowest_quiet_threshold(rates: dict[float, float], target: float) -> float:
    """The lowest threshold with FA/hour <= target (the quietest one if none meets it)."""
    quiet = [t for t, fa in rates.items() if fa <= target]
    return min(quiet) if quiet else min(rates, key=lambda t: (rates[t], -t))


def operating_points(
    model: WakeWordModel, items: list[Item], probs: list[np.ndarray], config: EvalConfig
) -> dict[str, Outcome]:
    base = model.metadata.detector
    rates = stream_fa_rates(model, items, probs, base, config)
    out = {DEFAULT: outcome(model, items, probs, base, config)}
    for target in FA_TARGETS:
        threshold = lowest_quiet_threshold(rates, target)
        out[f"{target:g} FA/h"] = outcome(model, items, probs, replace(base, threshold=threshold), config)
    return out


def paired(reference: list[bool], other: list[bool]) -> dict:
    """Clips where exactly one of two models has the flag (heard, fired), and the exact McNemar p."""
    only_reference = sum(a and not b for a, b in zip(reference, other, strict=True))
    only_other = sum(b and not a for a, b in zip(reference, other, strict=True))
    return {"only_reference": only_reference, "only_other": only_other,
            "p_mcnemar": mcnemar_exact(only_reference, only_other)}  # fmt: skip


def compare(outcomes: dict[str, dict[str, Outcome]], reference: str) -> dict:
    """Per operating point, each model against the reference: positives heard, sound-alikes fired."""
    out: dict = {}
    for point, ref in outcomes[reference].items():
        out[point] = {
            name: {
                "positives_heard_snr_ge_5db": paired(_not(ref.missed), _not(mine[point].missed)),
                "sound_alikes_fired": paired(ref.sound_alikes_fired, mine[point].sound_alikes_fired),
            }
            for name, mine in outcomes.items()
            if name != reference
        }
    return out


def _not(flags: list[bool]) -> list[bool]:
    return [not f for f in flags]


def run(
    word: str, name: str, profile: str, models: list[Path], hours: float | None, data_dir: Path | None
) -> dict:
    from training import make_model as mm
    from training.evaluate import build_items, stream_probabilities
    from wakeword.model import WakeWordModel

    config = mm.profile_config(word, name, profile, None, mm.LOGMEL).evaluation
    if hours is not None:
        config = replace(config, negative_hours=hours)
    manifest = (data_dir or mm.default_data_dir(word, profile)) / "manifest.jsonl"
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest}: no synthesised clips (`make model WORD='{word}'` makes them)")
    loaded = [WakeWordModel.load(path) for path in models]
    items = [it for it in build_items(manifest, config) if it.kind in SCORED_KINDS]
    outcomes: dict[str, dict[str, Outcome]] = {}
    labels = []
    for path, model in zip(models, loaded, strict=True):
        label = path.name if path.name not in labels else str(path)
        labels.append(label)
        log.info("%s: probabilities over %d items", label, len(items))
        probs = [stream_probabilities(model, it.audio) for it in items]
        outcomes[label] = operating_points(model, items, probs, config)
    return {
        "word": word,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "manifest": str(manifest),
        "negative_hours": round(sum(it.hours for it in items if it.kind == "negative_stream"), 3),
        "positives": sum(it.kind == "positive" for it in items),
        "positives_snr_ge_5db": len(next(iter(outcomes.values()))[DEFAULT].missed),
        "models": {label: str(path) for label, path in zip(labels, models, strict=True)},
        "results": {label: {p: o.summary() for p, o in points.items()} for label, points in outcomes.items()},
        "paired_vs_reference": compare(outcomes, labels[0]),
        "reference": labels[0],
    }


def markdown(result: dict) -> str:
    lines = [
        f"# {result['word']}: models paired on the same held-out synthetic clips",
        "",
        f"{result['positives_snr_ge_5db']} held-out positives at SNR >= 5 dB ({result['positives']} in all), "
        f"{result['negative_hours']} h of negative streams; commit {result['git_commit']}, "
        f"{result['created']}.",
        "",
        "| model | point | threshold / patience | FA/h | missed, SNR >= 5 dB (95% CI) | all SNRs "
        "| sound-alikes fire | real people saying other words fire |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, points in result["results"].items():
        for point, s in points.items():
            ci = s["missed_snr_ge_5db_ci95"] or (None, None)  # None: no positive at that SNR
            lines.append(
                f"| {label} | {point} | {s['threshold']} / {s['patience_frames']} | {s['fa_per_hour']:.2f} | "
                f"{_pct(s['missed_snr_ge_5db'])} ({_pct(ci[0])}-{_pct(ci[1])}) | {_pct(s['missed_all'])} | "
                f"{_pct(s['sound_alikes_fired'])} | {_pct(s['real_speech_fired'])} |"
            )
    reference = result["reference"]
    lines += ["", f"Paired against {reference}, clip by clip (exact McNemar):", ""]
    lines += [
        "| point | model | positives heard only by the reference / only by the model (p) "
        "| sound-alikes fired only by the reference / only by the model (p) |",
        "|---|---|---|---|",
    ]
    for point, models in result["paired_vs_reference"].items():
        for label, cell in models.items():
            heard, fired = cell["positives_heard_snr_ge_5db"], cell["sound_alikes_fired"]
            lines.append(
                f"| {point} | {label} | {heard['only_reference']} / {heard['only_other']} "
                f"({heard['p_mcnemar']:.2g}) | {fired['only_reference']} / {fired['only_other']} "
                f"({fired['p_mcnemar']:.2g}) |"
            )
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--word", default="espresso")
    p.add_argument("--name", help="the synthesis' model name (default: the word)")
    p.add_argument("--profile", default="full", choices=("full", "smoke"))
    p.add_argument("--model", type=Path, required=True, help="the reference model")
    p.add_argument("--also-model", type=Path, action="append", default=[], help="a model to pair with it")
    p.add_argument(
        "--hours", type=float, help="hours of negative streams (default: the profile's evaluation)"
    )
    p.add_argument("--data-dir", type=Path, help="synthesised clips (default: the word's, as make_model)")
    p.add_argument(
        "--out", type=Path, help=f"path stem of the JSON and .md (default {RESULTS_DIR}/synthetic-pairs-WORD)"
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if not args.also_model:
        p.error("--also-model: give at least one model to pair with --model")
    if args.hours is not None and args.hours <= 0:
        p.error("--hours must be positive")
    from wakeword.errors import ModelError

    try:
        models = [args.model, *args.also_model]
        result = run(args.word, args.name or args.word, args.profile, models, args.hours, args.data_dir)
    except (FileNotFoundError, ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stem = args.out or RESULTS_DIR / f"synthetic-pairs-{args.word.replace(' ', '_')}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
