"""Offline speed: CPU seconds (user + sys, one thread) per hour of audio, ours vs the peers.

Each engine runs in its own child process over the same corpus (evaluation
clips concatenated into one long stream), repeated; the median is reported,
and ours/peer ratios use medians from this same run. Audio decoding, imports
and model loading are outside the timed part (they are in ``child_total_cpu_s``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.common import SAMPLE_RATE, BenchSettings, ChildError, median, run_child, write_wav
from bench.dataset import EvalSet
from bench.engines import engine_title
from bench.peers import OWW_CHUNK

log = logging.getLogger(__name__)

#: PocketSphinx gets 1 s per process_raw call offline (hyp checked per call); ours runs detect_samples.
PEER_OFFLINE_CHUNK = {"pocketsphinx": SAMPLE_RATE, "openwakeword": OWW_CHUNK}


def build_corpus(evalset: EvalSet, seconds: float, path: Path) -> Path:
    """The first ``seconds`` of all evaluation clips (a spread of kinds), concatenated, as a WAV."""
    pieces, total = [], 0
    need = int(seconds * SAMPLE_RATE)
    kinds = ("positive", "confusable", "negative", "real_speech")
    queues = [list(evalset.of(k)) for k in kinds]
    while total < need and any(queues):
        for queue in queues:  # round robin over kinds, so a short corpus still mixes them
            if queue and total < need:
                samples = queue.pop(0).stream_samples()
                pieces.append(samples)
                total += samples.size
    if not pieces:
        raise ChildError("no audio to benchmark: no evaluation manifest and no real-speech folder")
    corpus = np.concatenate(pieces)
    while corpus.size < need:  # a tiny evaluation set: loop it
        corpus = np.concatenate([corpus, corpus])
    return write_wav(path, corpus[:need])


def run(settings: BenchSettings, engines: list[dict], corpus: Path) -> dict:
    runs: dict[str, list[dict]] = {spec["name"]: [] for spec in engines}
    for repeat in range(settings.repeats):
        order = engines if repeat % 2 == 0 else engines[::-1]  # alternate, so load drifts hit both
        for spec in order:
            payload = {
                "engine": spec,
                "audio": str(corpus),
                "chunk_samples": PEER_OFFLINE_CHUNK.get(spec["name"]),
            }
            child = run_child("offline", payload)
            r = child.result
            runs[spec["name"]].append(
                {
                    "cpu_s_per_audio_hour": r["cpu_s"] / r["audio_s"] * 3600.0,
                    "wall_s_per_audio_hour": r["wall_s"] / r["audio_s"] * 3600.0,
                    "cpu_s": r["cpu_s"],
                    "audio_s": r["audio_s"],
                    "detections": r["detections"],
                    "child_total_cpu_s": child.cpu_s,
                    "peak_rss_mb": r["peak_rss_mb"],
                }
            )
            log.info(
                "speed %s repeat %d: %.2f CPU-s/h",
                spec["name"],
                repeat,
                runs[spec["name"]][-1]["cpu_s_per_audio_hour"],
            )
    out: dict = {
        "corpus_s": runs[engines[0]["name"]][0]["audio_s"],
        "repeats": settings.repeats,
        "engines": {},
    }
    for spec in engines:
        name = spec["name"]
        cpu = median([r["cpu_s_per_audio_hour"] for r in runs[name]])
        out["engines"][name] = {
            "title": engine_title(spec),
            "cpu_s_per_audio_hour": cpu,
            "x_real_time": 3600.0 / cpu if cpu else None,
            "wall_s_per_audio_hour": median([r["wall_s_per_audio_hour"] for r in runs[name]]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in runs[name]]),
            "runs": runs[name],
        }
    ours = out["engines"].get("ours", {}).get("cpu_s_per_audio_hour")
    out["ratio_ours_to_peer"] = {
        name: (ours / e["cpu_s_per_audio_hour"]) if ours and e["cpu_s_per_audio_hour"] else None
        for name, e in out["engines"].items()
        if name != "ours"
    }
    return out
