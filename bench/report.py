"""Results: one JSON document and a Markdown table (date, machine, commit), next to the DET plot."""

from __future__ import annotations

import json
import os
from pathlib import Path

TARGETS = {
    "offline_cpu_s_per_hour": 12.0,
    "ratio_to_pocketsphinx": 0.2,
    "live_cpu_percent": 2.0,
    "live_peak_rss_mb": 80.0,
    "startup_s": 1.5,
    "latency_median_ms": 300.0,
    "latency_p95_ms": 500.0,
}
PEERS = ("pocketsphinx", "openwakeword")


def write_json(results: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def _f(value, fmt: str = "{:.2f}", none: str = "n/a") -> str:
    return none if value is None else fmt.format(value)


def _pct(value) -> str:
    return _f(None if value is None else 100 * value, "{:.1f}%")


def _verdict(value, target: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value <= target else "**missed**"


def _pair(d: dict, a: tuple, b: tuple, fmt: str = "{:.0f}") -> str:
    """'A / B' from two key paths of one dict."""
    return f"{_f(_get(d, *a), fmt)} / {_f(_get(d, *b), fmt)}"


def _get(d: dict, *keys):
    """d[k1][k2]... through dicts and lists; None where a step is missing."""
    for key in keys:
        in_list = isinstance(d, list) and isinstance(key, int) and -len(d) <= key < len(d)
        if not (in_list or (isinstance(d, dict) and key in d)):
            return None
        d = d[key]
    return d


def document(intro: str, table: list[str], notes: list[str]) -> str:
    """`intro`, a blank line, the table's lines with nothing between them, then each non-empty note
    as its own paragraph. The table ends where its block ends (by position, never by searching for
    its last row's text), so a row may repeat an earlier row or a note word for word."""
    return "\n".join([intro, "", *table]) + "\n\n" + "\n\n".join(n for n in notes if n) + "\n"


def markdown(results: dict) -> str:
    """The table for README.md and the issue."""
    meta = results["meta"]
    s = results.get("sections", {})
    speed = s.get("speed", {})
    live = s.get("live", {})
    chunks = s.get("chunks", {})
    acc = s.get("accuracy", {})
    pi = s.get("pi", {})
    present = ["ours", *[p for p in PEERS if p in meta["engines"]]]
    titles = {
        "ours": "wakeword (ours)",
        "pocketsphinx": "PocketSphinx KWS",
        "openwakeword": "openWakeWord (alexa)",
    }
    header = "| | " + " | ".join(titles[e] for e in present) + " | target (ours) | ours |"
    rule = "|" + "---|" * (len(present) + 3)
    rows = []

    def row(label: str, cells: dict, target: str = "", verdict: str = "") -> None:
        rows.append(
            f"| {label} | " + " | ".join(cells.get(e, "n/a") for e in present) + f" | {target} | {verdict} |"
        )

    ours_cpu = _get(speed, "engines", "ours", "cpu_s_per_audio_hour")
    row(
        "Offline CPU-s per audio hour, 1 thread (x real time)",
        {
            e: f"{_f(_get(speed, 'engines', e, 'cpu_s_per_audio_hour'))} "
            f"({_f(_get(speed, 'engines', e, 'x_real_time'), '{:.0f}')}x)"
            for e in present
            if _get(speed, "engines", e)
        },
        "<= 12 (>= 300x)",
        _verdict(ours_cpu, TARGETS["offline_cpu_s_per_hour"]),
    )
    ratio = _get(speed, "ratio_ours_to_peer", "pocketsphinx")
    row(
        "CPU ratio ours / peer (same run)",
        {e: _f(_get(speed, "ratio_ours_to_peer", e), "{:.3f}") for e in present if e != "ours"}
        | {"ours": "1"},
        "<= 0.2 vs PocketSphinx",
        _verdict(ratio, TARGETS["ratio_to_pocketsphinx"]),
    )
    live_key = {"ours": "ours_cli", "pocketsphinx": "pocketsphinx", "openwakeword": "openwakeword"}
    ours_live = _get(live, "engines", "ours_cli") or {}
    row(
        f"Live CPU % of one core ({_f(live.get('audio_s'), '{:.0f}')} s file at real-time pace; "
        "ours: `wakeword listen`)",
        {
            e: _f(_get(live, "engines", live_key[e], "steady_cpu_percent_one_core"), "{:.2f}%")
            for e in present
        },
        "<= 2%",
        _verdict(ours_live.get("steady_cpu_percent_one_core"), TARGETS["live_cpu_percent"]),
    )
    row(
        "Live CPU %, same bench loop for every engine",
        {
            e: _f(
                _get(live, "engines", "ours_harness" if e == "ours" else e, "steady_cpu_percent_one_core"),
                "{:.2f}%",
            )
            for e in present
        },
    )
    alt = _get(live, "engines", "ours_cli_100ms") or {}
    row(
        "Live CPU %, `wakeword listen` with `audio: {chunk_ms: 100}`",
        {"ours": _f(alt.get("steady_cpu_percent_one_core"), "{:.2f}%")},
        "<= 2%",
        _verdict(alt.get("steady_cpu_percent_one_core"), TARGETS["live_cpu_percent"]) if alt else "",
    )
    row(
        "Per-chunk CPU at real-time pace, median / p99 (us; bench loop, cold caches)",
        {
            e: _pair(paced, ("median",), ("p99",))
            for e in present
            if (
                paced := _get(
                    live, "engines", "ours_harness" if e == "ours" else e, "paced_chunk_thread_cpu_us"
                )
            )
        },
    )
    row(
        "Live peak RSS (MB)",
        {e: _f(_get(live, "engines", live_key[e], "peak_rss_mb"), "{:.0f}") for e in present},
        "<= 80",
        _verdict(ours_live.get("peak_rss_mb"), TARGETS["live_peak_rss_mb"]),
    )
    row(
        "Startup to READY (s, median, wall time)",
        {e: _f(_get(live, "engines", live_key[e], "startup_to_ready_s_median")) for e in present},
        "<= 1.5",
        _verdict(ours_live.get("startup_to_ready_s_median"), TARGETS["startup_s"]),
    )
    row(
        f"Per-chunk CPU back to back, median / p99 (us; "
        f"{_f(1000 * chunks['chunk_s'] if chunks.get('chunk_s') else None, '{:.0f}')} ms chunks, oWW 80 ms)",
        {
            e: f"{_f(_get(chunks, 'engines', e, 'thread_cpu_us', 'median'), '{:.0f}')} / "
            f"{_f(_get(chunks, 'engines', e, 'thread_cpu_us', 'p99'), '{:.0f}')}"
            for e in present
            if _get(chunks, "engines", e)
        },
    )
    op = {e: _get(acc, "engines", e, "operating_point") or {} for e in present}
    lat_ours = _get(op["ours"], "latency") or {}
    row(
        "Latency keyword end -> detection, median / p95 (ms)",
        {e: _pair(op[e], ("latency", "median_ms"), ("latency", "p95_ms")) for e in present if op[e]},
        "<= 300 / <= 500",
        (
            f"{_verdict(lat_ours.get('median_ms'), TARGETS['latency_median_ms'])} / "
            f"{_verdict(lat_ours.get('p95_ms'), TARGETS['latency_p95_ms'])}"
        ),
    )
    for i, target in enumerate((0.1, 0.5, 1.0)):
        cells = {}
        for e in present:
            entry = _get(acc, "engines", e, "frr_at")
            if entry:
                x = entry[i]
                note = "" if x["resolvable"] else " (unresolved)"
                found = (
                    f"{_pct(x['frr'])} (thr {x['threshold']:g})" if x["frr"] is not None else "not reached"
                )
                cells[e] = found + note
        row(f"FRR at {target:g} FA/hour", cells)
    row(
        "At operating point: FRR / FA per hour",
        {e: f"{_pct(op[e].get('frr'))} / {_f(op[e].get('fa_per_hour'))}" for e in present if op[e]},
    )
    row(
        "Confusable clips fired on",
        {
            e: f"{_pct(op[e].get('confusable_fa_rate'))} of {op[e].get('confusables')}"
            for e in present
            if op[e]
        },
        "",
    )
    row(
        "Real people (shared/real-speech): files fired on",
        {
            e: f"{op[e].get('real_speech_files_fired')} of {op[e].get('real_speech_files')}"
            for e in present
            if op[e]
        },
        "0",
    )
    row(
        "... of which not in our training split",
        {
            e: f"{op[e].get('real_speech_held_out_files_fired')} of {op[e].get('real_speech_held_out_files')}"
            for e in present
            if op[e]
        },
        "0",
    )
    for board, name in (("raspberry_pi_4", "Pi 4"), ("raspberry_pi_zero_2w", "Pi Zero 2 W")):
        row(
            f"{name} CPU % of one core (estimate, no Pi here)",
            {
                e: f"{_f(_get(pi, 'engines', e, 'estimates', board, 'cpu_percent_one_core'), '{:.1f}%')} "
                f"({_f(_get(pi, 'engines', e, 'estimates', board, 'range_percent', 0), '{:.1f}')}-"
                f"{_f(_get(pi, 'engines', e, 'estimates', board, 'range_percent', 1), '{:.1f}')})"
                for e in present
                if _get(pi, "engines", e, "estimates")
            },
        )
    ev = acc.get("eval_set", {})
    intro = (
        f"Benchmark of {meta['date']} on {meta['machine']['cpu']} ({meta['machine']['cores']} cores, "
        f"shared), commit {meta['commit']}, model: {meta['model_label']}"
        f"{' (QUICK smoke run)' if meta['quick'] else ''}."
    )
    notes = [
        "Operating points: ours at the model's shipped detector settings; PocketSphinx at kws_threshold "
        f"{meta.get('ps_default_threshold', 1e-20):g}. CPU figures are process CPU time (user+sys) "
        "in a child per engine, medians of repeats; wall-time figures (startup) are disturbed by other "
        "users of this shared machine.",
        "Latency is measured to the end of the audio chunk whose processing fired (live chunk size, "
        "the earliest a daemon can act), for both engines"
        + (
            f"; to the end of the firing frame (Detection.time_s) ours is "
            f"{_pair(ftl, ('median_ms',), ('p95_ms',))} ms."
            if (ftl := _get(acc, "engines", "ours", "frame_time_latency"))
            else "."
        ),
        "FRR at X FA/hour: the lowest FRR among the swept thresholds whose false accepts per hour on the "
        "negatives are <= X; '(unresolved)': the negatives are shorter than 1/X hours, so zero false "
        "accepts cannot show <= X. DET plot: bench/results/bench-det.png.",
    ]
    if ev:
        counts, hours = ev.get("counts", {}), ev.get("hours", {})
        notes.append(
            f"Evaluation audio ({ev.get('source')}): {counts.get('positive', 0)} positives, "
            f"{counts.get('confusable', 0)} confusables, {hours.get('negative', 0):.2f} h negatives, "
            f"{counts.get('real_speech', 0)} real-speech files ({hours.get('real_speech', 0):.2f} h). "
            + " ".join(n.rstrip(".") + "." for n in ev.get("notes", []))
        )
    for word, entry in s.get("real", {}).get("words", {}).items():
        if "skipped" in entry:
            notes.append(f"- Real people saying {word!r}: not measured ({entry['skipped']})")
            continue
        cells = [
            f"{name} {_pct(op['missed_clean'])} clean / {_pct(op['missed_10db'])} 10 dB at "
            f"{_f(op['fa_per_hour'])} FA/h (thr {op['threshold']:g})"
            for name, points in entry["operating_points"].items()
            if (op := points.get("default"))
        ]
        notes.append(
            f"- Real people saying {word!r} ({entry['recordings']} recordings, "
            f"{entry['negative_hours']:.2f} h negatives), missed at each engine's default: "
            + "; ".join(cells)
            + f". Equal-FA/h points and paired tests: {entry['files'][1]} (next to this report)."
        )
    for note in meta.get("notes", []):
        notes.append(f"- {note}")
    for name, err in results.get("errors", {}).items():
        notes.append(f"- section {name} failed: {err}")
    return document(intro, [header, rule, *rows], notes)
