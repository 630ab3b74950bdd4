"""Raspberry Pi cost, estimated: instructions per audio-second counted with callgrind, then scaled.

No Raspberry Pi is available here, so nothing in this module is a Pi measurement.
``perf stat`` cannot count instructions on this VM (no PMU: "<not supported>"), so
``valgrind --tool=callgrind`` counts executed x86-64 instructions (Ir) instead.
Each engine runs the offline child twice, on a short and a long slice of the same
corpus, fed in the live chunk size (20 ms: the per-call overhead a live daemon pays
is counted); the difference divided by the extra audio seconds removes start-up
(imports, model load) and leaves the streaming cost per audio-second. Instruction
counts ignore cache misses and wake-ups, which the live CPU% on this machine shows
to be a large part of the live cost: treat the Pi figures as a lower bound for live
listening. openWakeWord is left out (valgrind takes minutes just to import it here).

Scaling to a Pi (stated assumptions, not measurements):
* instructions: the same work takes 1.0-2.0x as many AArch64 instructions (NEON is
  128-bit where this x86 build uses 256-bit AVX2 under valgrind; scalar Python/C code
  is about 1:1); middle 1.5x;
* Pi 4: Cortex-A72 at 1.5 GHz, 0.8-1.5 instructions per cycle on this kind of code
  (middle 1.1); Pi Zero 2 W: Cortex-A53 at 1.0 GHz, 0.5-0.9 IPC (middle 0.7);
* CPU% of one core = instructions per audio-second x factor / (IPC x clock).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from bench.common import BenchSettings, ChildError, load_audio, run_child, write_wav
from bench.engines import engine_title
from bench.speed import PEER_OFFLINE_CHUNK

log = logging.getLogger(__name__)

BOARDS = {
    "raspberry_pi_4": {"cpu": "Cortex-A72", "ghz": 1.5, "ipc": (0.8, 1.1, 1.5)},
    "raspberry_pi_zero_2w": {"cpu": "Cortex-A53", "ghz": 1.0, "ipc": (0.5, 0.7, 0.9)},
}
ARM_FACTOR = (1.0, 1.5, 2.0)
#: openWakeWord under valgrind takes many minutes to import on this shared machine; its ratio to us is
#: in the speed section.
PI_ENGINES = ("ours", "pocketsphinx")  # AArch64 instructions per x86-64 instruction: low, middle, high


def _callgrind_ir(payload: dict, out_file: Path) -> int:
    prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", "--trace-children=no"]
    run_child("offline", payload, timeout_s=900.0, prefix=prefix)
    text = out_file.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if not match:
        raise ChildError(f"{out_file}: no instruction total in callgrind output")
    return int(match.group(1))


def board_estimates(ir_per_audio_s: float) -> dict:
    out = {}
    for board, spec in BOARDS.items():
        lo_ipc, mid_ipc, hi_ipc = spec["ipc"]
        hz = spec["ghz"] * 1e9
        out[board] = {
            "cpu": f"{spec['cpu']} @ {spec['ghz']} GHz",
            "cpu_percent_one_core": 100 * ir_per_audio_s * ARM_FACTOR[1] / (mid_ipc * hz),
            "range_percent": [
                100 * ir_per_audio_s * ARM_FACTOR[0] / (hi_ipc * hz),
                100 * ir_per_audio_s * ARM_FACTOR[2] / (lo_ipc * hz),
            ],
        }
    return out


def run(settings: BenchSettings, engines: list[dict], corpus: Path, workdir: Path) -> dict:
    if shutil.which("valgrind") is None:
        return {
            "skipped": "valgrind is not installed (apt-get install valgrind); perf stat is not supported here"
        }
    samples = load_audio(corpus)
    short_s, long_s = 2.0, (6.0 if settings.quick else 32.0)
    short = write_wav(workdir / "pi-short.wav", samples[: int(short_s * 16000)])
    long = write_wav(workdir / "pi-long.wav", samples[: int(long_s * 16000)])
    out: dict = {
        "method": "callgrind Ir(long) - Ir(short) per extra audio second, live chunk size, child per engine",
        "audio_s": [short_s, long_s],
        "assumptions": {
            "arm_instructions_per_x86_instruction": ARM_FACTOR,
            "boards": BOARDS,
            "no_pi_here": "No Raspberry Pi is available here: these are estimates, not measurements.",
            "perf": "perf stat reports <not supported> for instructions on this VM, so callgrind is used.",
        },
        "engines": {},
    }
    for spec in engines:
        name = spec["name"]
        if name not in PI_ENGINES:
            continue
        chunk = int(settings.chunk_s * 16000)
        payload = {
            "engine": spec,
            "chunk_samples": PEER_OFFLINE_CHUNK.get(name),
            "stream_chunk_samples": chunk,
        }
        try:
            ir_short = _callgrind_ir({**payload, "audio": str(short)}, workdir / f"cg-{name}-short.out")
            ir_long = _callgrind_ir({**payload, "audio": str(long)}, workdir / f"cg-{name}-long.out")
        except ChildError as exc:
            out["engines"][name] = {"title": engine_title(spec), "error": str(exc)}
            continue
        per_s = (ir_long - ir_short) / (long_s - short_s)
        out["engines"][name] = {
            "title": engine_title(spec),
            "instructions_per_audio_s": per_s,
            "startup_instructions": ir_short - (short_s + 1.0) * per_s,  # +1 s warm-up in the child
            "estimates": board_estimates(per_s),
        }
        log.info("pi: %s %.3g instructions per audio-second", name, per_s)
    return out
