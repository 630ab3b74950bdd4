"""Merge several exported models of one wake word into one ONNX model: the mean of their probabilities.

    python -m training.ensemble --name computer --output-dir /tmp/ens models/computer.onnx other.onnx
    python -m training.reevaluate --name computer --models-dir /tmp/ens --hours 6

Why: two runs of the same recipe (or two recipes) fail on different real recordings: on the 411 real
"computer" speakers the shipped model was better on clean clips and the repeat-clip recipe in noise
and in one long stream. Averaging their per-frame probabilities keeps most of each one's strengths,
and costs one more GRU per frame: the front end, the expensive part, is shared.

The merged graph is an ordinary wakeword model (``features`` and ``hidden_in`` in, ``probability`` and
``hidden_out`` out), so the runtime needs nothing new: the members' hidden states are stacked along
the state rows and split again inside the graph, each member runs on the same features with its own
state, and ``probability`` is their mean. The members must share the wake word, front end, frames per
step and state width. The metadata is the first member's (its detector settings are a placeholder:
re-evaluate to choose the operating point), and the card beside it names every member by SHA-256.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import compose, helper, numpy_helper

from wakeword.errors import ModelError
from wakeword.metadata import (
    INPUT_FEATURES,
    INPUT_HIDDEN,
    METADATA_KEY,
    OUTPUT_HIDDEN,
    OUTPUT_PROBABILITY,
)
from wakeword.model import WakeWordModel


class EnsembleError(ValueError):
    """Members that cannot be merged, with the reason."""


def _hidden_rows_and_width(model: onnx.ModelProto, path: Path) -> tuple[int, int]:
    for item in model.graph.input:
        if item.name == INPUT_HIDDEN:
            dims = [d.dim_value for d in item.type.tensor_type.shape.dim]
            if len(dims) == 3 and all(dims):
                return dims[0], dims[2]
    raise EnsembleError(f"{path}: no fixed-shape {INPUT_HIDDEN!r} input")


def _member_graph(model: onnx.ModelProto, prefix: str) -> onnx.GraphProto:
    """The member's graph with every name prefixed, reading the shared ``features`` input."""
    graph = compose.add_prefix(model, prefix).graph
    for node in graph.node:
        node.input[:] = [INPUT_FEATURES if name == prefix + INPUT_FEATURES else name for name in node.input]
    return graph


def merge(paths: list[Path]) -> onnx.ModelProto:
    """One ONNX model whose probability is the mean of the members' (each with its own state)."""
    if len(paths) < 2:
        raise EnsembleError("an ensemble needs at least two models")
    loaded = []
    for path in paths:
        try:
            loaded.append(WakeWordModel.load(path))
        except ModelError as exc:
            raise EnsembleError(str(exc)) from exc
    first = loaded[0]
    for model in loaded[1:]:
        for what, a, b in (
            ("wake word", first.name, model.name),
            ("front end", first.features, model.features),
            ("frames per step", first.metadata.frames_per_step, model.metadata.frames_per_step),
        ):
            if a != b:
                raise EnsembleError(f"{model.path}: its {what} ({b!r}) differs from {first.path}'s ({a!r})")
    protos = [onnx.load(str(path)) for path in paths]
    shapes = [_hidden_rows_and_width(proto, path) for proto, path in zip(protos, paths, strict=True)]
    widths = {width for _, width in shapes}
    if len(widths) != 1:
        raise EnsembleError(f"the members' hidden states have different widths {sorted(widths)}")
    width = widths.pop()
    rows = [r for r, _ in shapes]

    prefixes = [f"member{i}_" for i in range(len(paths))]
    split_sizes = numpy_helper.from_array(np.asarray(rows, dtype=np.int64), "ensemble_state_rows")
    nodes = [
        helper.make_node(
            "Split", [INPUT_HIDDEN, split_sizes.name], [p + INPUT_HIDDEN for p in prefixes], axis=0
        )
    ]
    initializers = [split_sizes]
    for proto, prefix in zip(protos, prefixes, strict=True):
        graph = _member_graph(proto, prefix)
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
    nodes.append(helper.make_node("Mean", [p + OUTPUT_PROBABILITY for p in prefixes], [OUTPUT_PROBABILITY]))
    nodes.append(helper.make_node("Concat", [p + OUTPUT_HIDDEN for p in prefixes], [OUTPUT_HIDDEN], axis=0))

    features = next(i for i in protos[0].graph.input if i.name == INPUT_FEATURES)
    probability = next(o for o in protos[0].graph.output if o.name == OUTPUT_PROBABILITY)
    total = sum(rows)
    graph = helper.make_graph(
        nodes,
        "wakeword_ensemble",
        [features, helper.make_tensor_value_info(INPUT_HIDDEN, onnx.TensorProto.FLOAT, [total, 1, width])],
        [
            probability,
            helper.make_tensor_value_info(OUTPUT_HIDDEN, onnx.TensorProto.FLOAT, [total, 1, width]),
        ],
        initializer=initializers,
    )
    merged = helper.make_model(graph, opset_imports=list(protos[0].opset_import))
    merged.ir_version = protos[0].ir_version
    names = ", ".join(f"{p.name} ({m.metadata.version})" for p, m in zip(paths, loaded, strict=True))
    description = f"mean of {len(paths)} models' probabilities: {names}. {first.metadata.description}"
    metadata = dataclasses.replace(first.metadata, description=description.strip())
    entry = merged.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = metadata.to_json()
    onnx.checker.check_model(merged)
    return merged


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _member_parameters(path: Path) -> int:
    """The member's own card's parameter count, else the number of weights in its ONNX file."""
    card_path = path.with_suffix(".yaml")
    card = yaml.safe_load(card_path.read_text()) if card_path.is_file() else None
    model = card.get("model") if isinstance(card, dict) else None
    counted = model.get("parameters") if isinstance(model, dict) else None
    if isinstance(counted, int) and counted > 0:
        return counted
    return sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)


def write(paths: list[Path], name: str, output_dir: Path) -> Path:
    """``output_dir/NAME.onnx`` and a card from the first member's, naming every member.

    The card's ``model`` section describes the merged file (every member's parameters, "mean of N"),
    because re-evaluation keeps that section as it is and a shipped card must not describe one member.
    """
    merged = merge(paths)
    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / f"{name}.onnx"
    onnx.save(merged, str(out))
    WakeWordModel.load(out)  # the runtime reads it, or this fails here rather than in a daemon
    card_path = paths[0].with_suffix(".yaml")
    card = yaml.safe_load(card_path.read_text()) if card_path.is_file() else {}
    model_section = card.setdefault("model", {})
    if "architecture" in model_section:
        model_section["architecture"] = f"mean of {len(paths)} models, each: {model_section['architecture']}"
    model_section["parameters"] = sum(_member_parameters(p) for p in paths)
    # The first member's re-evaluation scored that member, not the mean; keeping it would tell
    # readers (and bench.real_people) that the mean's operating point had been chosen for it.
    card.pop("reevaluated", None)
    card["ensemble"] = {
        "how": "mean of the members' per-frame probabilities, each member with its own hidden state",
        "members": [{"file": str(p), "sha256": _sha256(p)} for p in paths],
        "note": "the detector settings and every evaluation section are the first member's until "
        "training.reevaluate re-scores this file",
    }
    (output_dir / f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=110))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__.split("\n")[0])
    parser.add_argument("members", nargs="+", type=Path, help="exported models of one wake word")
    parser.add_argument("--name", required=True, help="output file stem (NAME.onnx, NAME.yaml)")
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        out = write(args.members, args.name, args.output_dir)
    except (EnsembleError, OSError) as exc:
        print(f"training.ensemble: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB) from {len(args.members)} members")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
