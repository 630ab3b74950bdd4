"""Training pipeline for wakeword models (needs the `training` extra: torch, onnx)."""
