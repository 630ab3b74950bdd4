"""Stage entry point: synthesise the raw clips for one wake word and write manifest.jsonl.

    python -m training.synthesize_data --word espresso --out training/work/espresso/data --profile full

Resumable (existing WAVs are kept, so a rerun only renders what is missing), deterministic for a
seed, at most two worker processes. The manifest is rewritten after every phase, so later stages
can start on the first phase's rows (espeak-ng, flite, noise, real speech) while the rest renders.

manifest.jsonl, one JSON object per clip:
  path        WAV relative to the manifest folder (16 kHz mono int16); real speech: absolute shared path
  kind        positive | confusable | speech | real_speech | real_positive_eval | music | noise
  text        what is said (noise: white/pink/brown/hum/silence/babble; music: "generated midi")
  voice       stable speaker id, e.g. "espeak:en-us+klatt3:s160:p40" (per-clip jitter is in `variant`)
  engine      espeak-ng | flite | festival | piper | kokoro | real | fluidsynth | noise
  split       train | val (whole voice groups held out) | test (real recordings of the target word)
  duration_s, sample_rate (16000), variant ("sp<speed>:pf<pitch factor>" for TTS, "" otherwise)
Positive and confusable clips are trimmed: the word ends where the clip ends.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import resource
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from training import background, texts
from training.real_speech import real_speech_rows
from training.synth import SAMPLE_RATE, SynthError, Variant, render, write_wav
from training.voices import KOKORO_VARIED_POOL, Voice, all_voices, stable_hash, summarize

log = logging.getLogger("training.synthesize_data")

KINDS = ("positive", "confusable", "speech", "real_speech", "real_positive_eval", "music", "noise")
MAX_WORKERS = 2
NON_VOICE_VAL_PERCENT = 25  # music/noise clips held out for validation


@dataclass(frozen=True)
class Profile:
    positives: dict[str, int]
    confusables: dict[str, int]
    speech: dict[str, int]
    music: tuple[int, float]  # clips, seconds each
    noise_per_kind: tuple[int, float]
    babble: tuple[int, float]
    n_confusable_texts: int
    n_sentences: int
    corpus_confusables: bool = True  # also mine the machine's English vocabulary (slow; smoke skips it)


PROFILES = {
    "smoke": Profile(
        positives={"espeak-ng": 14, "flite": 6},
        confusables={"espeak-ng": 14, "flite": 6},
        speech={"espeak-ng": 16, "flite": 4},
        music=(2, 8.0),
        noise_per_kind=(1, 8.0),
        babble=(2, 8.0),
        n_confusable_texts=40,
        n_sentences=20,
        corpus_confusables=False,
    ),
    "full": Profile(
        # espeak-ng is ~100x real time, so it carries the bulk (every espeak speaker says the word once);
        # the neural engines (Piper, Kokoro ~1 CPU-s per word) add fewer but more natural voices.
        # Not used: the "espeak-ng-accented" pool (voices.py; 890 other-language espeak speakers
        # reading English, 910 positives, 600 confusables, 2,000 sentences) left held-out espresso
        # level at 0.5-1 FA/h (11.1%/9.7% vs 11.5%/9.5% on 6 h) and far worse at 0.1 FA/h (49% vs 15%).
        positives={"espeak-ng": 1595, "flite": 160, "festival": 90, "piper": 200, "kokoro": 480},
        confusables={"espeak-ng": 1500, "flite": 200, "festival": 90, "piper": 160, "kokoro": 160},
        speech={"espeak-ng": 6000, "flite": 600, "festival": 150, "piper": 300, "kokoro": 40},
        music=(50, 30.0),
        noise_per_kind=(12, 30.0),
        babble=(30, 30.0),
        n_confusable_texts=300,
        n_sentences=12000,
    ),
}
# The full profile plus the training-only `kokoro-varied` pool (bench/results/kokoro-varied-rule.md): an
# experiment, not a recipe. Its plan is the full plan with the pool's clips added (every other job and
# the whole validation split are the same), so it can top up a copy of the full data in place.
PROFILES["full-varied"] = replace(
    PROFILES["full"],
    positives={**PROFILES["full"].positives, KOKORO_VARIED_POOL: 1000},
    confusables={**PROFILES["full"].confusables, KOKORO_VARIED_POOL: 300},
)
# Phase 1 is what the training engineer needs first; slow engines and music come later.
PHASE1_ENGINES = ("espeak-ng", "flite")


@dataclass(frozen=True)
class Job:
    relpath: str
    kind: str
    op: str  # tts | music | noise | babble
    text: str
    voice_id: str
    engine: str
    split: str
    variant: str = ""
    voice: Voice | None = None
    speed: float = 1.0
    pitch: float = 1.0
    trim: bool = False
    seed: int = 0
    duration_s: float = 0.0
    sources: tuple[str, ...] = field(default=())

    def row(self, duration_s: float) -> dict:
        return {
            "path": self.relpath,
            "kind": self.kind,
            "text": self.text,
            "voice": self.voice_id,
            "engine": self.engine,
            "split": self.split,
            "duration_s": round(duration_s, 4),
            "sample_rate": SAMPLE_RATE,
            "variant": self.variant,
        }


# ------------------------------------------------------------------------------------------ planning
def _tts_jobs(
    kind: str,
    counts: dict[str, int],
    text_pool: list[str],
    voices: dict[str, list[Voice]],
    seed: int,
    trim: bool,
) -> list[Job]:
    jobs = []
    for pool_name, count in counts.items():
        pool = voices.get(pool_name, [])
        if not pool or count <= 0:
            continue
        rng = np.random.default_rng(stable_hash(f"{seed}:{kind}:{pool_name}"))
        order = [pool[i] for i in rng.permutation(len(pool))]  # cycle so every voice is used once first
        for i in range(count):
            voice = order[i % len(order)]
            text = (
                text_pool[int(rng.integers(len(text_pool)))]
                if kind != "positive"
                else text_pool[i % len(text_pool)]
            )
            speed = float(rng.uniform(0.88, 1.14))
            pitch = float(rng.uniform(0.95, 1.05)) if voice.engine in ("espeak-ng", "flite") else 1.0
            variant = Variant(speed, pitch)
            digest = f"{stable_hash(f'{voice.voice_id}|{variant.tag()}|{text}|{trim}'):016x}"[:10]
            jobs.append(
                Job(
                    relpath=f"{kind}/{pool_name}/{i:05d}-{digest}.wav",
                    kind=kind,
                    op="tts",
                    text=text,
                    voice_id=voice.voice_id,
                    engine=voice.engine,
                    split=voice.split,
                    variant=variant.tag(),
                    voice=voice,
                    speed=variant.speed,
                    pitch=variant.pitch,
                    trim=trim,
                )
            )
    return jobs


def _split_for(key: str) -> str:
    return "val" if stable_hash(key) % 100 < NON_VOICE_VAL_PERCENT else "train"


def plan(word: str, profile: Profile, seed: int, engines: set[str]) -> list[list[Job]]:
    """All jobs, in phases: [espeak/flite + noise], [other engines + music], [babble]."""
    pools = set(profile.positives) | set(profile.confusables) | set(profile.speech)
    everything = all_voices()
    unknown = pools - {v.pool_name for v in everything}
    if unknown:  # a typo would otherwise plan nothing for that count, silently
        raise ValueError(f"synthesis profile counts name unknown voice pools: {sorted(unknown)}")
    inventory = [v for v in everything if v.engine in engines and v.pool_name in pools]
    by_pool: dict[str, list[Voice]] = {}
    for v in inventory:
        by_pool.setdefault(v.pool_name, []).append(v)
    pool_engine = {pool: voices[0].engine for pool, voices in by_pool.items()}
    log.info("voice inventory (distinct speakers per engine/split): %s", summarize(inventory))
    t0 = time.time()
    vocabulary = None if profile.corpus_confusables else []  # []: curated + spelling rules only
    confusable_texts = texts.confusables(word, profile.n_confusable_texts, vocabulary=vocabulary, seed=seed)
    confusable_texts = confusable_texts[: profile.n_confusable_texts]
    sentences = texts.negative_sentences(word, profile.n_sentences, seed=seed)
    short_sentences = [s for s in sentences if len(s.split()) <= 14] or sentences
    log.info(
        "%d confusable texts, %d sentences (%.1f s)", len(confusable_texts), len(sentences), time.time() - t0
    )
    if not sentences:
        raise SynthError("no English sentences found on this machine for negative speech")
    positives = [word, f"{word}!", f"{word}?", f"{word.capitalize()}.", word]

    def tts(engine_filter: tuple[str, ...], include: bool) -> list[Job]:
        def pick(counts: dict[str, int]) -> dict[str, int]:
            return {p: c for p, c in counts.items() if (pool_engine.get(p, p) in engine_filter) == include}

        jobs = _tts_jobs("positive", pick(profile.positives), positives, by_pool, seed, trim=True)
        jobs += _tts_jobs("confusable", pick(profile.confusables), confusable_texts, by_pool, seed, trim=True)
        speech_counts = pick(profile.speech)
        for pool_name, count in speech_counts.items():
            pool = short_sentences if pool_name == "kokoro" else sentences
            jobs += _tts_jobs("speech", {pool_name: count}, pool, by_pool, seed, trim=True)
        return jobs

    noise_jobs = []
    n_noise, noise_s = profile.noise_per_kind
    for kind in background.NOISE_KINDS:
        for i in range(n_noise):
            s = stable_hash(f"{seed}:noise:{kind}:{i}") % 2**31
            noise_jobs.append(
                Job(
                    f"noise/{kind}/{i:04d}-{s:08x}.wav",
                    "noise",
                    "noise",
                    kind,
                    f"noise:{kind}:{s:08x}",
                    "noise",
                    _split_for(f"noise:{kind}:{i}"),
                    seed=s,
                    duration_s=noise_s,
                )
            )
    music_jobs = []
    n_music, music_s = profile.music
    for i in range(n_music):
        s = stable_hash(f"{seed}:music:{i}") % 2**31
        music_jobs.append(
            Job(
                f"music/fluidsynth/{i:04d}-{s:08x}.wav",
                "music",
                "music",
                "generated midi",
                f"fluidsynth:song{s:08x}",
                "fluidsynth",
                _split_for(f"music:{i}"),
                seed=s,
                duration_s=music_s,
            )
        )
    phase1 = tts(PHASE1_ENGINES, True) + noise_jobs
    phase2 = tts(PHASE1_ENGINES, False) + music_jobs
    # Babble per split, from that split's speech only, so validation voices never leak into training.
    babble_jobs = []
    n_babble, babble_s = profile.babble
    speech = [j for j in phase1 + phase2 if j.kind == "speech"]
    for i in range(n_babble):
        split = "val" if i % 4 == 3 else "train"
        pool = [j.relpath for j in speech if j.split == split]
        if len(pool) < 3:
            continue
        rng = np.random.default_rng(stable_hash(f"{seed}:babble:{i}"))
        srcs = tuple(
            pool[k]
            for k in rng.choice(len(pool), size=min(len(pool), int(rng.integers(3, 8))), replace=False)
        )
        s = stable_hash(f"{seed}:babble:{i}:{srcs}") % 2**31
        babble_jobs.append(
            Job(
                f"noise/babble/{i:04d}-{s:08x}.wav",
                "noise",
                "babble",
                "babble",
                f"babble:{split}",
                "noise",
                split,
                seed=s,
                duration_s=babble_s,
                sources=srcs,
            )
        )
    return [phase1, phase2, babble_jobs]


# ------------------------------------------------------------------------------------------- workers
_OUT: Path | None = None


def _init_worker(out: str) -> None:
    global _OUT
    _OUT = Path(out)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _run_job(job: Job) -> tuple[Job, float | None, str | None]:
    """Render one job unless its file exists; returns (job, duration or None, error)."""
    assert _OUT is not None
    path = _OUT / job.relpath
    if path.exists():
        try:
            info = sf.info(str(path))
            return job, info.frames / info.samplerate, None
        except Exception:  # a corrupt leftover: render it again
            path.unlink(missing_ok=True)
    try:
        if job.op == "tts":
            assert job.voice is not None
            audio = render(job.text, job.voice, Variant(job.speed, job.pitch), trim=job.trim)
        elif job.op == "music":
            audio = background.render_music(job.seed, job.duration_s)
        elif job.op == "noise":
            audio = background.noise(job.text, job.duration_s, job.seed)
        elif job.op == "babble":
            clips = [sf.read(str(_OUT / p), dtype="float32")[0] for p in job.sources if (_OUT / p).exists()]
            audio = background.babble(clips, job.duration_s, job.seed)
        else:
            raise SynthError(f"unknown op {job.op}")
        write_wav(path, audio)
    except Exception as exc:  # one bad clip must not stop hours of synthesis
        return job, None, f"{type(exc).__name__}: {exc}"
    return job, len(audio) / SAMPLE_RATE, None


def _check_engine(engine: str) -> tuple[str, str | None]:
    from training.synth import engine_works

    voices = [v for v in all_voices({engine}) if v.engine == engine]
    if not voices:
        return engine, "no voices found"
    return engine, engine_works(voices[0])


# ------------------------------------------------------------------------------------------- driver
def write_manifest(out: Path, rows: list[dict]) -> Path:
    splits: dict[str, set[str]] = {}
    for row in rows:
        splits.setdefault(row["voice"], set()).add(row["split"])
    leaked = sorted(v for v, s in splits.items() if len(s) > 1)
    if leaked:  # a planning bug, never data to train on
        raise SynthError(f"voices in more than one split: {leaked[:5]}")
    path = out / "manifest.jsonl"
    tmp = out / "manifest.jsonl.part"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


_OWN_FILE = re.compile(r"^\d{4,5}-[0-9a-f]{8,10}\.wav(\.part)?$")


def prune(out: Path, planned: set[str]) -> None:
    """Delete clips this stage wrote for an older plan (changed texts or counts), and half-written
    files, so the folder holds what the manifest lists. Only our own file names are touched."""
    removed = 0
    for folder in ("positive", "confusable", "speech", "music", "noise"):
        for path in (out / folder).glob("*/*"):
            rel = path.relative_to(out).as_posix()
            if _OWN_FILE.match(path.name) and rel not in planned:
                path.unlink()
                removed += 1
    if removed:
        log.info("removed %d clips left from an older plan or an interrupted write", removed)


def summary(rows: list[dict]) -> dict:
    clips = Counter(r["kind"] for r in rows)
    hours = Counter()
    voices: dict[str, dict[str, set]] = {}
    for r in rows:
        hours[r["kind"]] += r["duration_s"] / 3600
        voices.setdefault(r["engine"], {}).setdefault(r["split"], set()).add(r["voice"])
    return {
        "clips": dict(clips),
        "hours": {k: round(v, 3) for k, v in hours.items()},
        "distinct_voices": {e: {s: len(v) for s, v in d.items()} for e, d in voices.items()},
    }


ALL_ENGINES = frozenset({"espeak-ng", "flite", "festival", "piper", "kokoro"})


def synthesize(
    word: str,
    out: Path,
    profile_name: str = "smoke",
    seed: int = 0,
    workers: int = MAX_WORKERS,
    engines: set[str] | frozenset[str] = ALL_ENGINES,
) -> dict:
    """Render (or resume) the data for `word` into `out`; returns the summary also written to
    out/summary.json. The smoke profile uses only espeak-ng and flite (fast to start, in CI)."""
    profile = PROFILES[profile_name]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    workers = max(1, min(MAX_WORKERS, workers))
    engines = set(engines) & set(PHASE1_ENGINES) if profile_name == "smoke" else set(engines)
    ctx = multiprocessing.get_context("spawn")  # never fork a process that loaded onnxruntime
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(out),)) as pool:
        for engine, problem in pool.imap_unordered(_check_engine, sorted(engines)):
            if problem:
                log.warning("voice source %s does not work here, dropping it: %s", engine, problem)
                engines.discard(engine)
            else:
                log.info("voice source %s works", engine)
        phases = plan(word, profile, seed, engines)
        prune(out, {job.relpath for jobs in phases for job in jobs})
        real_rows = real_speech_rows(word)
        done: list[dict] = []
        failures: Counter = Counter()
        for number, jobs in enumerate(phases, 1):
            if not jobs:
                continue
            bar = tqdm(
                total=len(jobs), desc=f"synth phase {number}/{len(phases)}", unit="clip", mininterval=2
            )
            for job, duration, error in pool.imap_unordered(_run_job, jobs, chunksize=4):
                bar.update()
                if error is not None:
                    failures[job.engine] += 1
                    if failures[job.engine] <= 3:
                        log.warning("%s failed (%s, %r): %s", job.relpath, job.voice_id, job.text[:40], error)
                    continue
                done.append(job.row(duration))
            bar.close()
            rows = sorted(done, key=lambda r: r["path"]) + real_rows
            path = write_manifest(out, rows)
            log.info("phase %d done: %d rows in %s", number, len(rows), path)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    info = summary(rows)
    info.update(
        word=word,
        profile=profile_name,
        seed=seed,
        engines=sorted(engines),
        failures=dict(failures),
        wall_s=round(time.time() - started, 1),
        cpu_s_this_run=round(usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime, 1),
    )
    (out / "summary.json").write_text(json.dumps(info, indent=2) + "\n")
    if failures:
        log.warning("failed clips per engine (left out of the manifest): %s", dict(failures))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--word", default="espresso", help="wake word or short phrase, as text")
    parser.add_argument("--out", type=Path, help="output folder (default training/work/<word>/data)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=MAX_WORKERS, help=f"worker processes (1-{MAX_WORKERS})"
    )
    parser.add_argument(
        "--engines",
        default="espeak-ng,flite,festival,piper,kokoro",
        help="comma-separated voice sources to try (each is checked and dropped if it does not work)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    word = " ".join(args.word.split())
    if not texts.normalise(word):
        print(f"error: --word {args.word!r} has no letters to speak", file=sys.stderr)
        return 2
    if not 1 <= args.workers <= MAX_WORKERS:
        print(f"error: --workers must be 1..{MAX_WORKERS} (2 CPU cores are shared)", file=sys.stderr)
        return 2
    out = args.out or Path("training/work") / texts.normalise(word).replace(" ", "_") / "data"
    engines = {e.strip() for e in args.engines.split(",") if e.strip()}
    unknown = engines - ALL_ENGINES
    if unknown:
        print(f"error: unknown engines {sorted(unknown)}", file=sys.stderr)
        return 2
    # A background job ignores SIGINT; make SIGTERM stop cleanly too (the pool is terminated on exit).
    # Restored afterwards, since make_model calls main() in its own process.
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if on_main_thread:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        info = synthesize(word, out, args.profile, args.seed, args.workers, engines)
    except (SynthError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    log.info("summary: %s", json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
