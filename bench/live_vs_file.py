"""Live equals file? The same clips through `wakeword detect` and through `wakeword listen` on a virtual mic.

Issue #17, item 5: a user saw the hook run for 7 of 10 clips through a PulseAudio
virtual microphone where `wakeword detect` found 9. This measures both paths on
N >= 100 held-out positives (``training.evaluate.build_items``: validation voices,
clean and 20/10 dB SNR, known keyword end), paired per clip:

* **file**: one `wakeword detect --json` over the clip WAVs (a fresh detector per file);
* **sequence**: `wakeword detect` on ONE WAV of the clips as played, with the same gaps
  of digital silence: the continuous stream without live capture;
* **live**: ONE `wakeword listen --json` per model, as a user runs it, with a hook that
  appends its stdin event JSON to a file, capturing the default input (a private
  PulseAudio null sink's monitor, 16 kHz mono) while this harness plays the clips one
  after another with `paplay`, a gap longer than the refractory period between them. A
  hook event belongs to the clip whose play started last before it (wall clock);
* **dump**: what `listen --dump-audio` says the detector heard, compared sample by sample
  with the played clips, and `wakeword detect` on that dump (the live run replayed offline).

File vs live is compared with the exact McNemar test on the clips where they disagree.
Results: ``bench/results/live_vs_file-<model>.json`` and ``.md``. Not in CI (it plays
audio in real time: about 6 s a clip); timing lives here, not in tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import REPO_ROOT, RESULTS_DIR, SAMPLE_RATE, dither, stop_process, write_wav
from bench.live import wakeword_command

log = logging.getLogger("bench.live_vs_file")

#: Extra silence after the refractory period between two clips, so no detection can be suppressed
#: by the previous clip's.
GAP_MARGIN_S = 0.5
READY_TIMEOUT_S = 60.0
FIRST_SEARCH_S = 60.0  # the first clip lies this close to the start of a recording
#: Quiet plays before the first clip: the first paplay into the idle null sink garbled its first
#: ~0.5 s in the monitor (and so in what listen heard) here; these take that hit instead.
WARMUP_PLAYS = 2


@dataclass(frozen=True)
class ClipSpec:
    """One played clip: a WAV holding one keyword at a known place."""

    index: int
    path: str
    duration_s: float
    keyword_start_s: float
    keyword_end_s: float
    snr: str  # "clean" or e.g. "20dB"
    group: str


# --------------------------------------------------------------------------- pure parts (tested)


def attribute(times: Sequence[float], starts: Sequence[float]) -> list[int | None]:
    """Index of the clip each event belongs to: the last clip that started at or before it (None: before all).

    Works for wall-clock play times and for stream positions alike; clips are separated by
    more than the refractory period, so an event after clip i's end but before clip i+1 starts
    is clip i's (late) detection.
    """
    order = np.asarray(starts, dtype=np.float64)
    if np.any(np.diff(order) < 0):
        raise ValueError("clip starts must be in playing order")
    idx = np.searchsorted(order, np.asarray(times, dtype=np.float64), side="right") - 1
    return [None if i < 0 else int(i) for i in idx]


def per_clip(times: Sequence[float], starts: Sequence[float]) -> list[list[float]]:
    """Event times relative to their clip's start, grouped per clip."""
    out: list[list[float]] = [[] for _ in starts]
    for t, i in zip(times, attribute(times, starts), strict=True):
        if i is not None:
            out[i].append(t - starts[i])
    return out


def exact_mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p: the discordant pairs split as Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_table(first: Sequence[bool], second: Sequence[bool]) -> dict[str, float | int]:
    """2x2 table of two paired outcomes and the exact McNemar p on its discordant cells."""
    if len(first) != len(second):
        raise ValueError("paired outcomes must have the same length")
    both = sum(a and b for a, b in zip(first, second, strict=True))
    only_first = sum(a and not b for a, b in zip(first, second, strict=True))
    only_second = sum(b and not a for a, b in zip(first, second, strict=True))
    neither = len(first) - both - only_first - only_second
    return {
        "both": both,
        "only_first": only_first,
        "only_second": only_second,
        "neither": neither,
        "mcnemar_exact_p": exact_mcnemar_p(only_first, only_second),
    }


def in_window(rel_times: Sequence[float], clip: ClipSpec, after_s: float) -> float | None:
    """First time in [keyword start, keyword end + after_s] (clip-relative), as in training/evaluate.py."""
    inside = [t for t in rel_times if clip.keyword_start_s <= t <= clip.keyword_end_s + after_s]
    return min(inside) if inside else None


def xcorr(signal: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``template`` at every offset inside ``signal`` ('valid' offsets).

    Normalised by the energy under the template at each offset: clip levels differ by 40 dB, and a
    raw correlation peaks on a loud neighbour rather than on a quiet clip itself.
    """
    x = signal.astype(np.float64)
    t = template.astype(np.float64)
    size = 1 << (x.size + t.size - 1).bit_length()
    raw = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(t, size)), size)[: x.size - t.size + 1]
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    local = energy[t.size :] - energy[: x.size - t.size + 1]
    return raw / np.sqrt(np.maximum(local, 1e-9) * max(float(np.sum(t**2)), 1e-9))


def locate(recording: np.ndarray, clip: np.ndarray, from_sample: int, search_s: float) -> int | None:
    """Where ``clip`` starts in ``recording``, searching ``search_s`` seconds from ``from_sample``."""
    window = recording[from_sample : from_sample + clip.size + int(search_s * SAMPLE_RATE)]
    if window.size < clip.size:
        return None
    return from_sample + int(np.argmax(xcorr(window, clip)))


def compare(recording: np.ndarray, clip: np.ndarray, at: int) -> dict:
    """How a recorded stretch differs from the played clip: exact, from which sample on it is exact,
    max |diff|, level and correlation."""
    got = recording[at : at + clip.size].astype(np.int64)
    want = clip[: got.size].astype(np.int64)
    differ = np.flatnonzero(got != want)
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0  # noqa: E731
    both = rms(got) > 0 and rms(want) > 0
    return {
        "exact": bool(got.size == clip.size and differ.size == 0),
        "exact_from_ms": round(1000 * (int(differ[-1]) + 1 if differ.size else 0) / SAMPLE_RATE, 2),
        "samples_differing": int(differ.size),
        "max_abs_diff": int(np.max(np.abs(got - want))) if got.size else None,
        "level_db": round(20 * math.log10(rms(got) / rms(want)), 3) if both else None,
        "correlation": round(float(np.corrcoef(got, want)[0, 1]), 6) if both else None,
    }


# --------------------------------------------------------------------------- the clips


def build_clips(manifest: Path, n: int, cache: Path, seed: int = 4242) -> list[ClipSpec]:
    """N held-out positives from training.evaluate.build_items (half clean, a quarter each at 20/10 dB)."""
    from training.evaluate import CLEAN, EvalConfig, build_items, snr_name

    config = EvalConfig(
        negative_hours=1 / 3600,  # build_items always makes one negative stream: make it one second
        stream_s=1.0,
        dense_hours=0.0,
        max_positives=n,
        positive_repeats=max(1, math.ceil(n / 200)),
        snr_bins_db=(CLEAN, 20.0, CLEAN, 10.0),
        max_confusables=0,
        max_real=0,
        training_voice_positives=0,
        seed=seed,
    )
    digest = hashlib.sha256(manifest.read_bytes() + repr(config).encode()).hexdigest()[:16]
    folder = cache / f"clips-{digest}"
    index = folder / "clips.json"
    if index.is_file():
        return [ClipSpec(**c) for c in json.loads(index.read_text())]
    clips = []
    items = [it for it in build_items(manifest, config) if it.kind == "positive"][:n]
    for i, item in enumerate(items):
        path = write_wav(folder / f"clip-{i:04d}.wav", item.audio)
        clips.append(
            ClipSpec(
                i,
                str(path),
                item.audio.size / SAMPLE_RATE,
                float(item.start_s),
                float(item.end_s),
                snr_name(item.snr_db),
                item.group,
            )
        )
    index.write_text(json.dumps([asdict(c) for c in clips], indent=1))
    return clips


def sequence_layout(clips: Sequence[ClipSpec], gap_s: float) -> list[int]:
    """Start sample of each clip in the played sequence (clip, gap of silence, clip, ...)."""
    starts, pos = [], int(gap_s * SAMPLE_RATE)
    for clip in clips:
        starts.append(pos)
        pos += int(round(clip.duration_s * SAMPLE_RATE)) + int(gap_s * SAMPLE_RATE)
    return starts


def write_sequence(clips: Sequence[ClipSpec], gap_s: float, path: Path) -> list[int]:
    from bench.common import load_audio

    starts = sequence_layout(clips, gap_s)
    audios = [load_audio(c.path) for c in clips]
    total = starts[-1] + audios[-1].size + int(gap_s * SAMPLE_RATE)
    out = np.zeros(total, dtype=np.int16)
    for start, audio in zip(starts, audios, strict=True):
        out[start : start + audio.size] = audio
    write_wav(path, out)
    return starts


# --------------------------------------------------------------------------- running the CLI


def detect(model: Path, files: Sequence[str], env: dict[str, str]) -> dict[str, list[dict]]:
    """`wakeword detect --json` over files: detections per file."""
    argv = [*wakeword_command(), "detect", "--json", "--model", str(model), *files]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wakeword detect failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    out: dict[str, list[dict]] = {f: [] for f in files}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            out[record["file"]].append(record)
    return out


@dataclass
class Listener:
    """One running `wakeword listen` (one model) and the files it writes."""

    model: Path
    folder: Path
    proc: subprocess.Popen | None = None
    events: Path = field(init=False)
    dump: Path = field(init=False)
    stdout: Path = field(init=False)
    stderr: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.events = self.folder / "hook-events.jsonl"
        self.dump = self.folder / "listen-heard.wav"
        self.stdout = self.folder / "listen-stdout.jsonl"
        self.stderr = self.folder / "listen-stderr.log"
        self.events.write_text("")

    def start(self, env: dict[str, str]) -> None:
        argv = [
            *wakeword_command(),
            "listen",
            "--json",
            "--model",
            str(self.model),
            "--hook",
            f"cat >> '{self.events}'",
            "--dump-audio",
            str(self.dump),
        ]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self.stdout.open("wb"),
            stderr=self.stderr.open("wb"),
            env=env,
            cwd=str(REPO_ROOT),
        )

    def ready(self) -> bool:
        return "listening for" in self.stderr.read_text(errors="replace")

    def stop(self) -> int | None:
        return None if self.proc is None else stop_process(self.proc)


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def play_all(
    clips: Sequence[ClipSpec],
    listeners: Sequence[Listener],
    folder: Path,
    gap_s: float,
    latency_ms: int,
) -> dict:
    """Private PulseAudio, parecord of the sink monitor, one listen per model, then paplay each clip."""
    from tests.virtual_mic import start_virtual_mic

    mic = start_virtual_mic("vmic", 16000, 1)
    env = {**mic.env, "XDG_CONFIG_HOME": str(folder / "xdg-empty")}  # no user config
    monitor = folder / "sink-monitor.wav"
    recorder = None
    plays: list[dict] = []
    try:
        recorder = subprocess.Popen(
            [
                "parecord",
                f"--device={mic.source}",
                "--rate=16000",
                "--channels=1",
                "--format=s16le",
                "--file-format=wav",
                str(monitor),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for listener in listeners:
            listener.start(env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(li.ready() for li in listeners):
            if time.monotonic() > deadline or any(li.proc.poll() is not None for li in listeners):  # type: ignore[union-attr]
                tails = [li.stderr.read_text(errors="replace")[-400:] for li in listeners]
                raise RuntimeError(f"listen did not start: {tails}")
            time.sleep(0.1)
        time.sleep(gap_s)
        warmup = folder / "warmup.wav"
        write_wav(warmup, dither(SAMPLE_RATE // 2, 1))
        for _ in range(WARMUP_PLAYS):
            subprocess.run(
                ["paplay", f"--latency-msec={latency_ms}", f"--device={mic.sink}", str(warmup)],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
            time.sleep(gap_s)
        for i, clip in enumerate(clips):
            started = time.time()
            proc = subprocess.run(
                ["paplay", f"--latency-msec={latency_ms}", f"--device={mic.sink}", clip.path],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )
            ended = time.time()
            plays.append({"start": started, "end": ended, "paplay_rc": proc.returncode})
            if i % 10 == 0:
                log.info("played %d/%d", i + 1, len(clips))
            time.sleep(gap_s)
        time.sleep(1.0)
    finally:
        codes = [li.stop() for li in listeners]
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                recorder.kill()
        mic.stop()
    return {"plays": plays, "listen_exit_codes": codes, "monitor": str(monitor)}


# --------------------------------------------------------------------------- analysis


def _read_int16(path: Path) -> np.ndarray:
    import soundfile as sf

    try:
        audio, _ = sf.read(str(path), dtype="int16")
    except RuntimeError:  # a recorder killed before it fixed its header: raw s16le after 44 bytes
        audio = np.frombuffer(path.read_bytes()[44:], dtype="<i2")
    return np.asarray(audio).reshape(-1)


def align_all(
    recording: np.ndarray, clips: Sequence[ClipSpec], slots_s: Sequence[float]
) -> tuple[list[int | None], list[dict]]:
    """Each clip's start in a recording of the whole run, in playing order, and how it compares.

    ``slots_s``: wall time from each clip's play start to the next one's (the last: its length
    plus a gap); clip i is searched for from the end of clip i-1 over its slot and 2 s more.
    """
    from bench.common import load_audio

    starts: list[int | None] = []
    checks: list[dict] = []
    pos = 0
    for clip, slot in zip(clips, slots_s, strict=True):
        audio = load_audio(clip.path)
        search = slot if pos else FIRST_SEARCH_S
        at = locate(recording, audio, pos, search + 2.0)
        starts.append(at)
        checks.append(compare(recording, audio, at) if at is not None else {"exact": False})
        if at is not None:
            pos = at + audio.size
    return starts, checks


def analyse(
    model: Path,
    clips: Sequence[ClipSpec],
    file_det: dict[str, list[dict]],
    seq_det: list[dict],
    seq_starts: list[int],
    listener: Listener,
    run: dict,
    accept_after_s: float,
    env: dict[str, str],
) -> dict:
    """Per-clip outcomes of every path, the paired tables and the latencies."""
    plays = [p["start"] for p in run["plays"]]
    events = read_jsonl(listener.events)
    printed = read_jsonl(listener.stdout)
    event_wall = [_wall(e["time"]) for e in events]
    live_rel = per_clip(event_wall, plays)
    unattributed = sum(1 for i in attribute(event_wall, plays) if i is None)

    heard = _read_int16(listener.dump) if listener.dump.is_file() else np.zeros(0, np.int16)
    slots = [b - a for a, b in zip(plays, plays[1:], strict=False)] + [clips[-1].duration_s + 5.0]
    heard_starts, heard_checks = align_all(heard, clips, slots)
    monitor = Path(run["monitor"])
    mon = _read_int16(monitor) if monitor.is_file() else np.zeros(0, np.int16)
    mon_starts, mon_checks = align_all(mon, clips, slots)

    found = [s for s in heard_starts if s is not None]
    dump_det = detect(model, [str(listener.dump)], env)[str(listener.dump)] if heard.size else []
    usable = len(found) == len(clips)
    stream_starts = [s / SAMPLE_RATE for s in heard_starts] if usable else []  # type: ignore[operator]
    dump_rel = per_clip([d["time"] for d in dump_det], stream_starts) if usable else None
    live_stream_rel = per_clip([e["stream_time_s"] for e in events], stream_starts) if usable else None
    seq_rel = per_clip([d["time"] for d in seq_det], [s / SAMPLE_RATE for s in seq_starts])

    rows = []
    for i, clip in enumerate(clips):
        file_times = [d["time"] for d in file_det[clip.path]]
        row = {
            "clip": Path(clip.path).name,
            "snr": clip.snr,
            "group": clip.group,
            "keyword_end_s": round(clip.keyword_end_s, 3),
            "file": bool(file_times),
            "file_times": file_times,
            "file_in_window": in_window(file_times, clip, accept_after_s) is not None,
            "sequence": bool(seq_rel[i]),
            "sequence_times": [round(t, 3) for t in seq_rel[i]],
            "live": bool(live_rel[i]),
            "live_wall_times": [round(t, 3) for t in live_rel[i]],
            "live_in_window_wall": in_window(live_rel[i], clip, accept_after_s) is not None,
            "heard_exact": heard_checks[i].get("exact"),
            "heard_exact_from_ms": heard_checks[i].get("exact_from_ms"),
            "heard_correlation": heard_checks[i].get("correlation"),
            "heard_level_db": heard_checks[i].get("level_db"),
            "monitor_exact": mon_checks[i].get("exact"),
            "paplay_s": round(run["plays"][i]["end"] - run["plays"][i]["start"], 3),
        }
        if dump_rel is not None and live_stream_rel is not None:
            row["dump"] = bool(dump_rel[i])
            row["dump_times"] = [round(t, 3) for t in dump_rel[i]]
            row["live_stream_times"] = [round(t, 3) for t in live_stream_rel[i]]
        rows.append(row)

    def flags(key: str) -> list[bool]:
        return [bool(r[key]) for r in rows]

    def lat(rel: list[list[float]] | None) -> dict:
        if rel is None:
            return {}
        hits = [(in_window(r, c, 5.0), c) for r, c in zip(rel, clips, strict=True)]
        values = [t - c.keyword_end_s for t, c in hits if t is not None]
        return _summary(values)

    file_rel = [[d["time"] for d in file_det[c.path]] for c in clips]
    stderr = listener.stderr.read_text(errors="replace")
    out = {
        "model": str(model),
        "clips": len(clips),
        "detected": {
            "file": sum(flags("file")),
            "sequence": sum(flags("sequence")),
            "live": sum(flags("live")),
            "dump": sum(flags("dump")) if usable else None,
        },
        "file_vs_live": paired_table(flags("file"), flags("live")),
        "file_vs_sequence": paired_table(flags("file"), flags("sequence")),
        "sequence_vs_live": paired_table(flags("sequence"), flags("live")),
        "dump_vs_live": paired_table(flags("dump"), flags("live")) if usable else None,
        "by_snr": {
            snr: {
                "clips": sum(1 for r in rows if r["snr"] == snr),
                "file": sum(r["file"] for r in rows if r["snr"] == snr),
                "live": sum(r["live"] for r in rows if r["snr"] == snr),
            }
            for snr in sorted({r["snr"] for r in rows})
        },
        "latency_ms": {
            "file": lat(file_rel),
            "live_stream_clock": lat(live_stream_rel),
            "live_wall_clock_from_paplay_start": lat(live_rel),
        },
        "hook_events": len(events),
        "listen_printed": len(printed),
        "hook_events_before_first_clip": unattributed,
        "hook_events_equal_printed": sorted((e["frame"], round(e["stream_time_s"], 3)) for e in events)
        == sorted((p["frame"], round(p["time"], 3)) for p in printed),
        "live_equals_dump_replay": (
            sorted(round(e["stream_time_s"], 3) for e in events)
            == sorted(round(d["time"], 3) for d in dump_det)
        ),
        "heard": {
            "clips_found": len(found),
            "clips_exact": sum(bool(c.get("exact")) for c in heard_checks),
            "clips_exact_after_5ms": sum((c.get("exact_from_ms") or 1e9) <= 5.0 for c in heard_checks),
            "clips_correlation_below_0.99": sum((c.get("correlation") or 0) < 0.99 for c in heard_checks),
            "exact_from_ms_median": float(np.median([c.get("exact_from_ms") or 0 for c in heard_checks])),
            "seconds": round(heard.size / SAMPLE_RATE, 2),
        },
        "sink_monitor": {
            "clips_found": sum(s is not None for s in mon_starts),
            "clips_exact": sum(bool(c.get("exact")) for c in mon_checks),
            "clips_exact_after_5ms": sum((c.get("exact_from_ms") or 1e9) <= 5.0 for c in mon_checks),
            "same_as_heard": [c.get("exact_from_ms") for c in mon_checks]
            == [c.get("exact_from_ms") for c in heard_checks],
        },
        "listen_warnings": [line for line in stderr.splitlines() if "WARNING" in line or "ERROR" in line][
            :20
        ],
        "listen_overrun_lines": sum("audio overrun" in line for line in stderr.splitlines()),
        "per_clip": rows,
    }
    return out


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    arr = np.asarray(values) * 1000
    return {
        "n": len(values),
        "median": round(float(np.median(arr)), 1),
        "p95": round(float(np.percentile(arr, 95)), 1),
        "max": round(float(arr.max()), 1),
    }


def context_effect(model: Path, clips: Sequence[ClipSpec], gap_s: float, accept_after_s: float) -> dict:
    """Why a stream differs from a file: each clip from a fresh detector, alone or after other audio.

    Offline, with ``detect_samples`` (the code ``wakeword detect`` runs). A clip counts when
    detected in [keyword start, keyword end + accept_after_s]. "previous" is the clip played
    before it (the last one for the first clip); its "lead" is its audio before the keyword.
    """
    from bench.common import load_audio
    from wakeword.engine import Detector, detect_samples

    detector = Detector([model])
    audios = [load_audio(c.path) for c in clips]
    silence = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.int16)
    long_silence = np.zeros(30 * SAMPLE_RATE, dtype=np.int16)
    outcomes: dict[str, list[bool]] = {}
    for i, (clip, audio) in enumerate(zip(clips, audios, strict=True)):
        prev, prev_clip = audios[i - 1], clips[i - 1]
        prev_lead = prev[: int(prev_clip.keyword_start_s * SAMPLE_RATE)]
        variants = {
            "alone": [],
            f"after {gap_s:g} s of silence": [silence],
            f"after the previous clip's lead-in (no keyword) + {gap_s:g} s": [prev_lead, silence],
            f"after the previous clip + {gap_s:g} s (as played)": [prev, silence],
            "after the previous clip + 30 s of silence": [prev, long_silence],
        }
        for name, before in variants.items():
            offset = sum(b.size for b in before) / SAMPLE_RATE
            times = [d.time_s - offset for d in detect_samples(np.concatenate([*before, audio]), detector)]
            outcomes.setdefault(name, []).append(in_window(times, clip, accept_after_s) is not None)
    alone = outcomes["alone"]
    return {name: {"detected": sum(v), "vs_alone": paired_table(alone, v)} for name, v in outcomes.items()}


# --------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    d, n = result["detected"], result["clips"]
    lines = [
        f"# Live vs file: `{Path(result['model']).name}` ({result['clips']} clips)",
        "",
        f"Measured {result['measured']} on {result['machine']}. Clips: {result['clip_source']}. "
        f"Gap between clips {result['gap_s']} s of digital silence; `paplay --latency-msec="
        f"{result['paplay_latency_ms']}` into a private PulseAudio null sink (16 kHz mono); "
        "`wakeword listen` captured its monitor as the default input. Command: "
        f"`{result['command']}`.",
        "",
        "| path | detected |",
        "|---|---|",
        f"| file: `wakeword detect` per clip WAV | {d['file']}/{result['clips']} |",
        f"| sequence: `wakeword detect` on one WAV of the played sequence | {d['sequence']}/{n} |",
        f"| live: hook events of one `wakeword listen` | {d['live']}/{result['clips']} |",
        f"| dump: `wakeword detect` on what `listen` heard (`--dump-audio`) | {d['dump']}/{n} |",
        "",
        "Paired (exact McNemar on the discordant clips):",
        "",
        "| comparison | both | first only | second only | neither | p |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("file_vs_live", "file_vs_sequence", "sequence_vs_live", "dump_vs_live"):
        t = result.get(key)
        if t:
            lines.append(
                f"| {key.replace('_', ' ')} | {t['both']} | {t['only_first']} | {t['only_second']} | "
                f"{t['neither']} | {t['mcnemar_exact_p']:.3g} |"
            )
    lines += [
        "",
        "By SNR (file / live): "
        + ", ".join(f"{k} {v['file']}/{v['live']} of {v['clips']}" for k, v in result["by_snr"].items()),
        "",
    ]
    lat = result["latency_ms"]
    lines.append("Latency, keyword end to detection (ms; median / p95 / max):")
    lines.append("")
    for key, title in (
        ("file", "file (detection time in the clip)"),
        (
            "live_stream_clock",
            "live, stream clock (hook's stream_time_s vs where the clip lies in what listen heard)",
        ),
        (
            "live_wall_clock_from_paplay_start",
            "live, wall clock (hook event time minus paplay start + keyword end)",
        ),
    ):
        v = lat.get(key) or {}
        if v.get("n"):
            lines.append(f"- {title}: {v['median']} / {v['p95']} / {v['max']} (n={v['n']})")
    h, m = result["heard"], result["sink_monitor"]
    lines += [
        "",
        f"Audio: `listen` heard {h['seconds']} s (`--dump-audio`); all {h['clips_found']} clips found in it; "
        f"{h['clips_exact_after_5ms']} equal the played WAV sample for sample after their first 5 ms (which "
        f"every `paplay` start loses), the others have playback dropouts (runs of zeros) inside; the sink "
        f"monitor recorded by `parecord` has {m['clips_exact_after_5ms']} such clips, "
        f"{'the same ones, to the millisecond' if m['same_as_heard'] else 'NOT the same ones'}: "
        "whatever differs happened in the sound server, before `listen`. "
        f"Hook events {result['hook_events']}, detections printed {result['listen_printed']} "
        f"(the same: {result['hook_events_equal_printed']}), events before the first clip "
        f"{result['hook_events_before_first_clip']}; live events equal `detect` on the dump: "
        f"{result['live_equals_dump_replay']}; overrun warnings {result['listen_overrun_lines']}; "
        f"`listen` exit code {result.get('listen_exit_code')}.",
    ]
    ctx = result.get("context")
    if ctx:
        lines += [
            "",
            "Why a stream differs from a file: each clip from a fresh detector (offline, the code of "
            "`wakeword detect`), alone or after other audio; detected in [keyword start, end + 1.5 s]; "
            "paired against *alone*:",
            "",
            "| clip heard | detected | alone only | this only | p |",
            "|---|---|---|---|---|",
        ]
        for name, v in ctx.items():
            t = v["vs_alone"]
            lines.append(
                f"| {name} | {v['detected']}/{result['clips']} | {t['only_first']} | {t['only_second']} | "
                f"{t['mcnemar_exact_p']:.3g} |"
            )
    disagree = [r for r in result["per_clip"] if r["file"] != r["live"] or r["file"] != r["sequence"]]
    if disagree:
        lines += [
            "",
            "Clips where the paths disagree:",
            "",
            "| clip | snr | file | sequence | live | dump |",
            "|---|---|---|---|---|---|",
        ]
        for r in disagree:
            lines.append(
                f"| {r['clip']} | {r['snr']} | {r['file_times']} | {r['sequence_times']} | "
                f"{r['live_wall_times']} | {r.get('dump_times')} |"
            )
    if result.get("notes"):
        lines += ["", *result["notes"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def _label(model: Path, models: Sequence[Path]) -> str:
    """The model's file stem, with its folder's name in front when two models share the stem."""
    if sum(m.stem == model.stem for m in models) > 1:
        return f"{model.parent.name}-{model.stem}"
    return model.stem


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_vs_file", description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", type=Path, help="model(s) under test (one listen each)")
    parser.add_argument("--clips", type=int, default=100, help="how many held-out positives (default 100)")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=REPO_ROOT / "training/work/espresso/data/manifest.jsonl",
        help="synthesised training data manifest (its validation voices are used)",
    )
    parser.add_argument("--gap", type=float, help="silence between clips, s (default: refractory + 0.5)")
    parser.add_argument("--paplay-latency-ms", type=int, default=20)
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "wakeword-live-vs-file"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument(
        "--no-context", dest="context", action="store_false", help="skip the offline context analysis"
    )
    parser.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the Markdown of a result")
    args = parser.parse_args(argv)
    if args.render:
        args.render.with_suffix(".md").write_text(markdown(json.loads(args.render.read_text())))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from training.evaluate import EvalConfig
    from wakeword.model import WakeWordModel

    models = args.model or [REPO_ROOT / "models/espresso.onnx"]
    loaded = [WakeWordModel.load(m) for m in models]
    refractory = max(m.metadata.detector.refractory_s for m in loaded)
    gap = args.gap if args.gap is not None else refractory + GAP_MARGIN_S
    if gap <= refractory:
        parser.error(f"--gap must exceed the refractory period ({refractory} s)")
    accept_after = EvalConfig().accept_after_s

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    clips = build_clips(args.manifest, args.clips, work)
    log.info("%d clips, %.1f min of audio with gaps", len(clips), sum(c.duration_s + gap for c in clips) / 60)
    env = dict(os.environ)
    sequence = work / f"sequence-{len(clips)}-{gap:g}.wav"
    seq_starts = write_sequence(clips, gap, sequence)

    file_det = {m: detect(m, [c.path for c in clips], env) for m in models}
    seq_det = {m: detect(m, [str(sequence)], env)[str(sequence)] for m in models}
    run_dir = work / datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S")
    listeners = [Listener(m, run_dir / _label(m, models)) for m in models]
    started = time.time()
    run = play_all(clips, listeners, run_dir, gap, args.paplay_latency_ms)
    log.info("live run took %.0f s", time.time() - started)

    import platform

    for model, listener, wake in zip(models, listeners, loaded, strict=True):
        result = analyse(
            model, clips, file_det[model], seq_det[model], seq_starts, listener, run, accept_after, env
        )
        result["context"] = context_effect(model, clips, gap, accept_after) if args.context else None
        result.update(
            measured=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            machine=f"{platform.machine()}, {os.cpu_count()} CPUs (shared with model training)",
            clip_source=f"training.evaluate.build_items({args.manifest}), validation voices",
            gap_s=gap,
            paplay_latency_ms=args.paplay_latency_ms,
            frames_per_second=wake.features.frames_per_second,
            threshold=wake.metadata.detector.threshold,
            command="python -m bench.live_vs_file " + " ".join(sys.argv[1:] if argv is None else argv),
            listen_exit_code=run["listen_exit_codes"][listeners.index(listener)],
            run_dir=str(listener.folder),
        )
        name = f"live_vs_file-{_label(model, models)}{args.tag}"
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out_dir / f"{name}.md").write_text(markdown(result))
        d, t = result["detected"], result["file_vs_live"]
        print(
            f"{model.name}: file {d['file']}/{len(clips)}, sequence {d['sequence']}, live {d['live']}, "
            f"dump {d['dump']}; file-only {t['only_first']}, live-only {t['only_second']}, "
            f"McNemar p={t['mcnemar_exact_p']:.3g} -> {args.out_dir / name}.md"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
