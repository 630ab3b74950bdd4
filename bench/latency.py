"""Latency from keyword end to detection (median, p95) on positives with a known keyword end.

Detection time is the chunk-end time: when the audio chunk whose processing
fired had fully arrived (the earliest a live daemon can act), with the live
chunk size, for every engine alike. For ours the frame-based ``Detection.time_s``
(end of the firing frame) is reported too. A positive counts only if detected
within [keyword start, keyword end + 1.5 s] (EVALUATION.md).
"""

from __future__ import annotations

from bench.common import percentile
from bench.dataset import FIRE_WINDOW_AFTER_END_S, Clip


def first_in_window(clip: Clip, times: list[float]) -> float | None:
    if clip.keyword_end_s is None:
        return None
    start = clip.keyword_start_s if clip.keyword_start_s is not None else clip.keyword_end_s - 1.0
    inside = [t for t in times if start <= t <= clip.keyword_end_s + FIRE_WINDOW_AFTER_END_S]
    return min(inside) if inside else None


def latencies(clips: list[Clip], times_per_clip: list[list[float]]) -> list[float]:
    """Detection minus keyword end, for every positive detected in its window."""
    out = []
    for clip, times in zip(clips, times_per_clip, strict=True):
        if clip.kind != "positive":
            continue
        hit = first_in_window(clip, times)
        if hit is not None:
            out.append(hit - clip.keyword_end_s)  # type: ignore[operator]
    return out


def summarize(values: list[float]) -> dict:
    return {
        "n": len(values),
        "median_ms": None if not values else 1000 * percentile(values, 50),  # type: ignore[operator]
        "p95_ms": None if not values else 1000 * percentile(values, 95),  # type: ignore[operator]
        "max_ms": None if not values else 1000 * max(values),
    }
