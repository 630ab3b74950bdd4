"""Which real recordings an engine misses: miss rates by what each recording sounds like.

    python -m bench.real_misses bench/results/real-people-computer.json --point "0.5 FA/h"

``bench.real_people`` says how many real people an engine misses; this says *which*, so the next
training change can aim at them. Every recording of the run is measured (no model runs here: the
per-recording hits are in the run's JSON) and the recordings are split into quartiles of:

- ``word_span_s``: first to last 10 ms frame within 25 dB of the loudest one (the word, plus
  whatever noise or reverberation stays that loud around it);
- ``peak_to_floor_db``: loudest frame against the 10th-percentile frame (a high floor: a noisy
  room or microphone);
- ``level_dbfs``: RMS over the word span;
- ``bandwidth_hz``: the frequency under which 99% of the span's energy lies (a narrow band: a
  band-limited microphone or codec).

Each property gets the miss rate per quartile and an exact Fisher test of its lowest quartile against
its highest. The recordings are not independent (a speaker records several with one microphone; the
folder has no speaker ids), so p is optimistic: read it as a pointer, not a verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.real_people import wilson

FRAME = 160  # 10 ms at 16 kHz
SPAN_DB = 25.0
PROPERTIES = ("word_span_s", "peak_to_floor_db", "level_dbfs", "bandwidth_hz")


@dataclass(frozen=True)
class RecordingProfile:
    """What one recording sounds like, in numbers that need no model."""

    word_span_s: float
    peak_to_floor_db: float
    level_dbfs: float
    bandwidth_hz: float


def profile(samples: np.ndarray, sample_rate: int = 16000) -> RecordingProfile:
    """Measure one recording (float samples, mono)."""
    n = len(samples) // FRAME
    if n < 2:
        raise ValueError(f"a recording of {len(samples)} samples is too short to profile")
    frames = samples[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    energy_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy_db > energy_db.max() - SPAN_DB)
    span = samples[loud[0] * FRAME : (loud[-1] + 1) * FRAME].astype(np.float64)
    power = np.abs(np.fft.rfft(span * np.hanning(len(span)))) ** 2
    cumulative = np.cumsum(power) / max(power.sum(), 1e-30)
    freqs = np.fft.rfftfreq(len(span), 1.0 / sample_rate)
    return RecordingProfile(
        word_span_s=round((loud[-1] - loud[0] + 1) * FRAME / sample_rate, 3),
        peak_to_floor_db=round(float(energy_db.max() - np.percentile(energy_db, 10)), 2),
        level_dbfs=round(float(10.0 * np.log10(np.mean(span**2) + 1e-12)), 2),
        bandwidth_hz=round(float(freqs[min(np.searchsorted(cumulative, 0.99), len(freqs) - 1)]), 1),
    )


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided exact p of the 2x2 table [[a, b], [c, d]] (scipy's: tables no likelier than it)."""
    from scipy.stats import fisher_exact as scipy_fisher_exact

    return float(scipy_fisher_exact([[a, b], [c, d]], alternative="two-sided").pvalue)


def quartile_table(values: np.ndarray, missed: np.ndarray) -> dict:
    """Miss rate per quartile of ``values``; lowest quartile against highest (Fisher)."""
    edges = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    bins = np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, 3)
    rows = []
    for q in range(4):
        sel = bins == q
        k, n = int(missed[sel].sum()), int(sel.sum())
        rows.append(
            {
                "range": [round(float(values[sel].min()), 3), round(float(values[sel].max()), 3)]
                if n
                else None,
                "recordings": n,
                "missed": k,
                "missed_rate": round(k / n, 4) if n else None,
                "missed_ci95": wilson(k, n),
            }
        )
    lo, hi = rows[0], rows[3]
    p = fisher_exact(
        lo["missed"], lo["recordings"] - lo["missed"], hi["missed"], hi["recordings"] - hi["missed"]
    )
    return {"quartiles": rows, "p_lowest_vs_highest": p}


def analyse(result: dict, engine: str, point: str, condition: str, real_dir: Path | None = None) -> dict:
    """Profiles of the run's recordings against one engine's hits at one operating point."""
    import soundfile as sf

    meta = result["meta"]
    if engine not in result["engines"]:
        raise KeyError(f"no engine {engine!r} in this run (it has: {', '.join(result['engines'])})")
    points = result["engines"][engine]["operating_points"]
    if point not in points:
        raise KeyError(f"no operating point {point!r} (the run has: {', '.join(points)})")
    hits = points[point].get(f"hits_{condition}")
    if hits is None:
        raise KeyError(f"no per-recording hits for {condition!r} at {point!r}")
    folder = Path(real_dir or meta["real_dir"])
    names = meta["recording_names"]
    if len(names) != len(hits):
        raise ValueError(f"{len(names)} recordings but {len(hits)} hits: not one run's result")
    profiles = []
    for name in names:
        samples, rate = sf.read(folder / name, dtype="float32", always_2d=True)
        profiles.append(profile(samples.mean(axis=1), rate))
    missed = np.array([flag == "0" for flag in hits])
    table = {
        prop: quartile_table(np.array([getattr(p, prop) for p in profiles]), missed) for prop in PROPERTIES
    }
    return {
        "source": {"date": meta.get("date"), "word": meta.get("word"), "real_dir": str(folder)},
        "engine": engine,
        "label": result["engines"][engine].get("label", engine),
        "point": point,
        "threshold": points[point].get("threshold"),
        "condition": condition,
        "recordings": len(names),
        "missed": int(missed.sum()),
        "by_property": table,
        "profiles": {name: asdict(p) for name, p in zip(names, profiles, strict=True)},
    }


def markdown(report: dict) -> str:
    lines = [
        f"# Which real recordings are missed: {report['label']}, {report['point']} "
        f"(threshold {report['threshold']}), {report['condition']}",
        "",
        f"Run of {report['source']['date']}, {report['recordings']} recordings of "
        f"{report['source']['word']!r}, {report['missed']} missed. Miss rate (95% interval) per quartile of "
        "each property; p: exact Fisher, lowest quartile against highest (recordings share speakers, so "
        "p is optimistic).",
        "",
        "| property | quartile 1 | quartile 2 | quartile 3 | quartile 4 | p (1 vs 4) |",
        "|---|---|---|---|---|---|",
    ]
    for prop, table in report["by_property"].items():
        cells = []
        for row in table["quartiles"]:
            if not row["recordings"]:
                cells.append("-")
                continue
            lo, hi = row["missed_ci95"]
            cells.append(
                f"{row['range'][0]:g} to {row['range'][1]:g}: {100 * row['missed_rate']:.0f}% "
                f"({100 * lo:.0f}-{100 * hi:.0f}) of {row['recordings']}"
            )
        lines.append(f"| {prop} | " + " | ".join(cells) + f" | {table['p_lowest_vs_highest']:.2g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, help="a bench.real_people JSON")
    parser.add_argument("--engine", default="ours", help="engine key in the JSON (default: ours)")
    parser.add_argument("--point", default="0.5 FA/h", help="operating point (default: '0.5 FA/h')")
    parser.add_argument("--condition", choices=("clean", "10db", "stream"), default="clean")
    parser.add_argument("--real-dir", type=Path, help="the recordings (default: the run's)")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.result.read_text())
        report = analyse(result, args.engine, args.point, args.condition, args.real_dir)
    except (OSError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    text = markdown(report)
    print(text, end="")
    if args.out:
        Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")  # OUT may hold dots
        Path(f"{args.out}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
