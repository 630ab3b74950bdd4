"""Export a trained WakeWordNet to ONNX with its metadata (the shipped format)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import onnx
import torch

from training.network import NetworkConfig, WakeWordNet
from wakeword.metadata import (
    INPUT_FEATURES,
    INPUT_HIDDEN,
    METADATA_KEY,
    OUTPUT_HIDDEN,
    OUTPUT_PROBABILITY,
    DetectorSettings,
    ModelMetadata,
)

#: onnxruntime on Raspberry Pi OS (pip wheels for aarch64) runs opset 17 comfortably.
OPSET = 17


def export_onnx(net: WakeWordNet, metadata: ModelMetadata, path: Path) -> Path:
    """Write ``net`` to ``path`` as ONNX with explicit hidden state and metadata."""
    if metadata.features.dim != net.config.n_mels:
        raise ValueError(
            f"the front end gives {metadata.features.dim} values per frame, "
            f"the network takes {net.config.n_mels}"
        )
    net = net.eval().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, metadata.frames_per_step, net.config.n_mels)
    hidden = net.initial_state(1)
    with torch.no_grad():
        torch.onnx.export(
            net,
            (example, hidden),
            str(path),
            input_names=[INPUT_FEATURES, INPUT_HIDDEN],
            output_names=[OUTPUT_PROBABILITY, OUTPUT_HIDDEN],
            dynamic_axes={INPUT_FEATURES: {1: "frames"}, OUTPUT_PROBABILITY: {1: "frames"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = metadata.to_json()
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def set_detector_defaults(
    path: Path, detector: DetectorSettings, version: str | None = None
) -> ModelMetadata:
    """Rewrite only the default detector settings (and version) in an exported model's metadata.

    Why: a re-evaluation may choose another operating point; the weights and graph stay byte-for-byte
    the same, and the file is replaced atomically so a running daemon never reads half a model.
    """
    path = Path(path)
    model = onnx.load(str(path))
    entries = [e for e in model.metadata_props if e.key == METADATA_KEY]
    if len(entries) != 1:
        raise ValueError(f"{path}: no single {METADATA_KEY!r} metadata entry to update")
    metadata = ModelMetadata.from_json(entries[0].value)
    changes: dict = {"detector": detector}
    if version is not None:
        changes["version"] = version
    metadata = dataclasses.replace(metadata, **changes)
    entries[0].value = metadata.to_json()
    onnx.checker.check_model(model)
    partial = path.with_name(path.name + ".partial")
    onnx.save(model, str(partial))
    os.replace(partial, path)
    return metadata


def save_checkpoint(net: WakeWordNet, metadata: ModelMetadata, path: Path) -> None:
    torch.save(
        {"network": net.config.__dict__, "state": net.state_dict(), "metadata": metadata.to_json()},
        path,
    )


def load_checkpoint(path: Path) -> tuple[WakeWordNet, ModelMetadata]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    net = WakeWordNet(NetworkConfig(**blob["network"]))
    net.load_state_dict(blob["state"])
    return net.eval(), ModelMetadata.from_json(blob["metadata"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a training checkpoint to ONNX.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    net, metadata = load_checkpoint(args.checkpoint)
    export_onnx(net, metadata, args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
