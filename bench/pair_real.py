"""Pair any two engines of ``bench.real_people`` results: ``python -m bench.pair_real RESULT.json A B``.

A real-people run pairs every engine with its reference only; a pre-registered rule may also need a
candidate against a third model of the same run (or of another run on the same recordings). Every
run records per-recording hits at each operating point, so such pairs need no re-run: this reads
them and applies the same exact McNemar test (``bench.real_people.compare``).

An engine is named by its key or its label in a result file (``ours-2``, ``mean/computer.onnx``), or
as ``OTHER.json:NAME`` for an engine of another run; two runs pair only if they scored the same
recordings in the same order (checked against ``meta.recording_names``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.real_people import compare


class PairError(Exception):
    """A result file or engine name that cannot be paired; the message says which and why."""


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PairError(f"cannot read {path}: {exc}") from exc


def find_engine(results: dict, name: str, path: Path) -> tuple[str, dict]:
    """The engine keyed or labelled ``name``; a label must name one engine only."""
    engines = results.get("engines", {})
    if name in engines:
        return name, engines[name]
    labelled = [key for key, eng in engines.items() if eng.get("label") == name]
    if len(labelled) == 1:
        return labelled[0], engines[labelled[0]]
    known = ", ".join(f"{key} ({eng.get('label')})" for key, eng in engines.items())
    why = "names several engines" if labelled else "is not an engine"
    raise PairError(f"{name!r} {why} in {path}; it has: {known}")


def resolve(spec: str, default_path: Path, default_results: dict) -> tuple[str, dict, dict]:
    """``NAME`` in the default file, or ``FILE.json:NAME``: (label, engine, that file's results)."""
    path, results, name = default_path, default_results, spec
    head, sep, tail = spec.partition(".json:")
    if sep:
        path = Path(head + ".json")
        results, name = load(path), tail
    key, engine = find_engine(results, name, path)
    return engine.get("label", key), engine, results


def pair(first: tuple[str, dict, dict], second: tuple[str, dict, dict]) -> dict:
    """Per operating point and condition: each engine's misses, the discordant counts and McNemar p."""
    (label_a, eng_a, res_a), (label_b, eng_b, res_b) = first, second
    if res_a is not res_b:  # two runs: only their recorded names can say they scored the same audio
        names_a = res_a.get("meta", {}).get("recording_names")
        names_b = res_b.get("meta", {}).get("recording_names")
        if names_a is None or names_b is None:
            raise PairError(
                "a run without meta.recording_names (older than that field) cannot be paired with another run"
            )
        if names_a != names_b:
            raise PairError("the two runs did not score the same recordings in the same order")
    if label_a == label_b:
        label_b += " (2)"
    cells = compare({label_a: eng_a, label_b: eng_b}, label_a)
    out: dict = {}
    for point, by_engine in cells.items():
        out[point] = {}
        for cond, cell in by_engine[label_b].items():
            hits_a = eng_a["operating_points"][point][f"hits_{cond}"]
            hits_b = eng_b["operating_points"][point][f"hits_{cond}"]
            out[point][cond] = {
                "missed": {label_a: hits_a.count("0"), label_b: hits_b.count("0")},
                "recordings": len(hits_a),
                "thresholds": {
                    label_a: eng_a["operating_points"][point]["threshold"],
                    label_b: eng_b["operating_points"][point]["threshold"],
                },
                **cell,
            }
    return {"a": label_a, "b": label_b, "points": out}


def markdown(paired: dict) -> str:
    a, b = paired["a"], paired["b"]
    lines = [
        f"| operating point | condition | missed: {a} | missed: {b} | only {a} heard | only {b} heard | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for point, conds in paired["points"].items():
        for cond, cell in conds.items():
            n = cell["recordings"]
            thr = cell["thresholds"]
            lines.append(
                f"| {point} (thr {thr[a]:g} / {thr[b]:g}) | {cond} | "
                f"{cell['missed'][a]}/{n} ({100 * cell['missed'][a] / n:.1f}%) | "
                f"{cell['missed'][b]}/{n} ({100 * cell['missed'][b] / n:.1f}%) | "
                f"{cell[f'only_{a}_detected']} | {cell[f'only_{b}_detected']} | {cell['p_mcnemar']:.3g} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pair_real", description=__doc__.splitlines()[0])
    p.add_argument("result", type=Path, help="a bench.real_people JSON")
    p.add_argument("a", help="engine key or label (or OTHER.json:NAME)")
    p.add_argument("b", help="engine key or label (or OTHER.json:NAME)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = p.parse_args(argv)
    try:
        results = load(args.result)
        paired = pair(resolve(args.a, args.result, results), resolve(args.b, args.result, results))
    except PairError as exc:
        print(f"pair_real: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(paired, indent=2) if args.json else markdown(paired), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
