"""``python -m bench [--quick] [--model PATH] [--only SECTIONS]``: run the benchmarks, write results.

Full run: bench/results/bench.json, bench.md, det.png. ``--quick`` (a smoke run on a
few seconds of audio) writes quick.json / quick.md / quick-det.png instead. The "real" section
(bench/real_people.py) writes its own real-people-<word>.json/.md/-det.png per word.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench import accuracy, chunks, live, pi_estimate, real_people, report, speed
from bench.common import REPO_ROOT, RESULTS_DIR, BenchSettings, git_commit, machine_info
from bench.dataset import load_eval_set
from bench.peers import openwakeword_unavailable, pocketsphinx_unavailable

log = logging.getLogger("bench")
SECTIONS = ("speed", "chunks", "live", "accuracy", "real", "pi")
SHIPPED = REPO_ROOT / "models" / "espresso.onnx"
TINY_LABEL = (
    "TINY RANDOM-WEIGHT STAND-IN (models/espresso.onnx not trained yet): same architecture as training's "
    "default (GRU 2x96), so speed/memory are representative; accuracy figures are meaningless"
)


def quick_settings(settings: BenchSettings) -> BenchSettings:
    return replace(
        settings,
        quick=True,
        repeats=1,
        speed_audio_s=6.0,
        live_s=4.0,
        startup_repeats=1,
        neg_hours=10.0 / 3600,
        max_positives=3,
        max_confusables=2,
        max_real_speech=3,
        ps_thresholds=(1e-10, 1e-20, 1e-30),
        sections=tuple(s for s in settings.sections if s != "pi"),
    )


def parse_args(argv: list[str] | None) -> tuple[BenchSettings, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="smoke run: a few seconds of audio, one repeat, no pi"
    )
    p.add_argument(
        "--model", type=Path, help="ONNX model (default models/espresso.onnx, else a tiny stand-in)"
    )
    p.add_argument("--only", help=f"comma-separated sections from {','.join(SECTIONS)}")
    p.add_argument("--pi", action="store_true", help="include the callgrind Pi estimate in --quick")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--manifest", type=Path, help="evaluation manifest (default: what training/ wrote)")
    p.add_argument(
        "--eval-manifest", type=Path, help="a ready evaluation set (bench format, bench/dataset.py)"
    )
    p.add_argument("--real-speech", type=Path, default=BenchSettings().real_speech_dir)
    p.add_argument("--neg-hours", type=float, help="cap on evaluation negatives (hours)")
    p.add_argument("--repeats", type=int)
    p.add_argument("--live-s", type=float, help="live run length in seconds")
    p.add_argument("--jobs", type=int, default=1, help="parallel PocketSphinx accuracy children")
    p.add_argument(
        "--no-cache", action="store_true", help="re-run PocketSphinx accuracy instead of its cache"
    )
    p.add_argument("--no-peers", action="store_true", help="ours only")
    p.add_argument(
        "--real-hours",
        type=float,
        help="negatives of the real-people section (default 3 h; --quick: 1 minute)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    chunk_s, chunk_source = chunks.configured_chunk_s()
    settings = BenchSettings(
        model=args.model,
        out_dir=args.out_dir,
        manifest=args.manifest,
        eval_manifest=args.eval_manifest,
        real_speech_dir=args.real_speech,
        jobs=args.jobs,
        use_cache=not args.no_cache,
        chunk_s=chunk_s,
    )
    if args.only:
        wanted = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = set(wanted) - set(SECTIONS)
        if unknown:
            p.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
        settings = replace(settings, sections=wanted)
    if args.quick:
        settings = quick_settings(settings)
        if args.pi and "pi" not in settings.sections:
            settings = replace(settings, sections=(*settings.sections, "pi"))
    overrides = {
        "neg_hours": args.neg_hours,
        "repeats": args.repeats,
        "live_s": args.live_s,
        "real_hours": args.real_hours,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_peers:
        settings = replace(settings, peers=())
    args.chunk_source = chunk_source
    return settings, args


def resolve_model(settings: BenchSettings, workdir: Path) -> tuple[Path, str]:
    if settings.model is not None:
        return settings.model.resolve(), str(settings.model)
    if SHIPPED.is_file():
        return SHIPPED, "shipped models/espresso.onnx"
    import torch

    from training.export import export_onnx
    from training.network import NetworkConfig, WakeWordNet
    from wakeword.metadata import ModelMetadata

    torch.manual_seed(1234)
    net = WakeWordNet(NetworkConfig()).eval()
    path = workdir / "tiny-espresso.onnx"
    export_onnx(net, ModelMetadata(wake_word="espresso", description="random weights (bench stand-in)"), path)
    return path, TINY_LABEL


def main(argv: list[str] | None = None) -> int:
    settings, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="bench: %(message)s")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="wakeword-bench-"))
    try:
        return _run(settings, args, workdir, started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(settings: BenchSettings, args: argparse.Namespace, workdir: Path, started: float) -> int:
    model, label = resolve_model(settings, workdir)
    notes = [f"live chunk size {settings.chunk_s * 1000:.0f} ms ({args.chunk_source})"]
    engines = [{"name": "ours", "model": str(model)}]
    unavailable = {}
    if not args.no_peers:
        for name, why in (
            ("pocketsphinx", pocketsphinx_unavailable()),
            ("openwakeword", openwakeword_unavailable()),
        ):
            if why:
                unavailable[name] = why
                notes.append(f"{name} not run: {why}")
            else:
                engines.append(
                    {"name": name, "threshold": settings.ps_default_threshold}
                    if name == "pocketsphinx"
                    else {"name": name}
                )
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "machine": machine_info(),
        "model": str(model),
        "model_label": label,
        "quick": settings.quick,
        "engines": [e["name"] for e in engines],
        "unavailable": unavailable,
        "ps_default_threshold": settings.ps_default_threshold,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()},
        "notes": notes,
    }
    print(
        f"bench: model {label}; engines {', '.join(meta['engines'])}; sections {','.join(settings.sections)}"
    )
    evalset = load_eval_set(settings)
    corpus = speed.build_corpus(evalset, settings.speed_audio_s, workdir / "corpus.wav")
    results: dict = {"meta": meta, "sections": {}, "errors": {}}
    for section in settings.sections:
        t0 = time.monotonic()
        print(f"bench: {section} ...", flush=True)
        try:
            results["sections"][section] = _section(section, settings, engines, evalset, corpus, workdir)
        except Exception as exc:  # one failing section must not lose the others' figures
            log.debug("%s", traceback.format_exc())
            results["errors"][section] = f"{type(exc).__name__}: {exc}"
            print(f"bench: {section} FAILED: {exc}", file=sys.stderr)
        print(f"bench: {section} done in {time.monotonic() - t0:.0f} s", flush=True)
    meta["total_wall_s"] = time.monotonic() - started
    meta["load_avg_at_end"] = list(__import__("os").getloadavg())
    stem = "quick" if settings.quick else "bench"
    out = settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if "accuracy" in results["sections"]:
        short_label = "tiny random-weight stand-in" if label == TINY_LABEL else label
        png = accuracy.det_plot(results["sections"]["accuracy"], out / f"{stem}-det.png", short_label)
        results["sections"]["accuracy"]["det_png"] = None if png is None else png.name
    report.write_json(results, out / f"{stem}.json")
    table = report.markdown(results)
    (out / f"{stem}.md").write_text(table)
    print(table)
    print(f"bench: wrote {out / (stem + '.json')}, {out / (stem + '.md')}")
    return 1 if results["errors"] else 0


def _section(section: str, settings, engines, evalset, corpus: Path, workdir: Path) -> dict:
    if section == "speed":
        return speed.run(settings, engines, corpus)
    if section == "chunks":
        return chunks.run(settings, engines, corpus)
    if section == "live":
        from bench.common import load_audio, write_wav

        samples = load_audio(corpus)
        need = int(settings.live_s * 16000)
        while samples.size < need:
            import numpy as np

            samples = np.concatenate([samples, samples])
        audio = write_wav(workdir / "live.wav", samples[:need])
        short = write_wav(workdir / "startup.wav", samples[: 5 * 16000])
        return live.run(settings, engines, audio, short, workdir)
    if section == "accuracy":
        return accuracy.run(settings, evalset, engines, workdir)
    if section == "real":
        return real_people.section(settings, engines[0]["model"])
    if section == "pi":
        return pi_estimate.run(settings, engines, corpus, workdir)
    raise ValueError(section)


if __name__ == "__main__":
    raise SystemExit(main())
