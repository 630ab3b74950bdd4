"""``python -m bench.clips``: what ``listen --save-clips`` costs the live loop, in CPU % of one core.

Issue 18's budget: with clips on, ``wakeword listen`` may use at most 0.2 percentage points
more CPU than without. Two daemons read the same file at microphone pace (FileSource, real
time), at the same time so they share the machine's conditions: one plain, one with
``--save-clips DIR --save-near-misses T``. The audio has the word (a held-out espeak-ng voice)
every few seconds among ordinary speech, so clips really are cut and written during the run.
CPU is each process's user+sys over the steady part (READY + 1 s to the end), as the live
section measures it (bench/live.py); the spawn order alternates between repeats, and the
result is the median of the paired differences.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from bench import live
from bench.common import REPO_ROOT, RESULTS_DIR, median

RATE = 16000
VOICE = "en-gb-x-gbcwmd"  # held out of training whole (training/voices.py ESPEAK_VAL_ACCENTS)
SPEECH = "The weather this morning is cloudy with a light breeze, and the market opens at nine."


def _espeak(text: str, folder: Path) -> np.ndarray:
    import soxr

    wav = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", VOICE, "-w", str(wav), text], check=True, capture_output=True)
    audio, rate = sf.read(str(wav), dtype="float32")
    audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    return 0.3 * audio / max(1e-6, float(np.abs(audio).max()))


def make_audio(path: Path, seconds: float) -> Path:
    """The word, then ordinary speech, then quiet, repeated for ``seconds`` (with a small noise floor)."""
    with tempfile.TemporaryDirectory() as tmp:
        word = _espeak("espresso", Path(tmp))
        other = _espeak(SPEECH, Path(tmp))
    unit = np.concatenate([np.zeros(RATE // 2), word, np.zeros(RATE), other, np.zeros(RATE // 2)])
    reps = int(np.ceil(seconds * RATE / unit.size))
    audio = np.tile(unit, reps)[: int(seconds * RATE)].astype(np.float32)
    audio += np.random.default_rng(0).normal(0, 1e-4, audio.size).astype(np.float32)
    sf.write(str(path), audio, RATE, subtype="PCM_16")
    return path


def run(seconds: float, repeats: int, model: Path, near_misses: float, workdir: Path) -> dict:
    audio = make_audio(workdir / "clips-bench.wav", seconds)
    runs = []
    for repeat in range(repeats):
        clips = workdir / f"clips-{repeat}"
        base = [*live.wakeword_command(), "listen", "--input", str(audio), "--model", str(model)]
        argvs = {
            "plain": base,
            "save_clips": [*base, "--save-clips", str(clips), "--save-near-misses", str(near_misses)],
        }
        order = list(argvs) if repeat % 2 == 0 else list(reversed(argvs))
        watched = {name: live._spawn(f"{name}-{repeat}", argvs[name], workdir) for name in order}
        live._watch(list(watched.values()), deadline_s=seconds + 60.0)
        result = {name: live._summary(w) for name, w in watched.items()}
        result["clips_saved"] = len(list(clips.glob("*.wav")))
        result["near_misses_saved"] = len(list((clips / "near-miss").glob("*.wav")))
        runs.append(result)
    plain = [r["plain"]["steady_cpu_percent_one_core"] for r in runs]
    saving = [r["save_clips"]["steady_cpu_percent_one_core"] for r in runs]
    diffs = [s - p for s, p in zip(saving, plain, strict=True) if s is not None and p is not None]
    return {
        "audio_s": seconds,
        "repeats": repeats,
        "model": str(model),
        "near_miss_threshold": near_misses,
        "plain_cpu_percent": plain,
        "save_clips_cpu_percent": saving,
        "difference_pp": diffs,
        "median_plain_cpu_percent": median([p for p in plain if p is not None]),
        "median_save_clips_cpu_percent": median([s for s in saving if s is not None]),
        "median_difference_pp": median(diffs) if diffs else None,
        "budget_pp": 0.2,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.clips", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=65.0, help="audio per run (default 65)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "espresso.onnx")
    p.add_argument("--near-misses", type=float, default=0.5, help="--save-near-misses threshold")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "clips.json")
    args = p.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("bench.clips: espeak-ng is needed to make the audio", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="wakeword-bench-clips-") as tmp:
        result = run(args.seconds, args.repeats, args.model, args.near_misses, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    fmt = ", ".join
    print(
        f"listen CPU % of one core over {args.seconds:.0f} s at real-time pace, {args.repeats} paired runs: "
        f"plain {fmt(f'{v:.2f}' for v in result['plain_cpu_percent'])}; "
        f"--save-clips {fmt(f'{v:.2f}' for v in result['save_clips_cpu_percent'])}; "
        f"median difference {result['median_difference_pp']:+.2f} pp (budget +0.2); "
        f"clips saved per run {[r['clips_saved'] for r in result['runs']]}, "
        f"near misses {[r['near_misses_saved'] for r in result['runs']]}. Written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
