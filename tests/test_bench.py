"""Smoke test of the benchmarks: `python -m bench --quick` runs end to end and writes valid JSON.

No timing is asserted (timings live in bench/results, not in tests). The audio is
synthesised here with espeak-ng; the model is the "loud" test model, which fires
on any loud audio, so every stage (streaming, threshold sweep, latency, the peers,
the live daemon) has real detections to count. The last tests check the Markdown report's layout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.speech import espeak_missing, keyword_clip, other_speech_clip

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def eval_manifest(tmp_path_factory) -> Path:
    if espeak_missing():
        pytest.skip(espeak_missing())
    folder = tmp_path_factory.mktemp("bench-eval")
    lines = []
    for i, voice in enumerate(("en-us", "en-gb")):
        clip = keyword_clip(folder / f"positive-{i}.wav", voice=voice)
        lines.append(
            {
                "path": clip.path.name,
                "kind": "positive",
                "keyword_start_s": clip.speech_start_s,
                "keyword_end_s": clip.speech_end_s,
                "snr_db": "clean",
                "padded": True,
            }
        )
    other = other_speech_clip(folder / "negative-0.wav")
    lines.append({"path": other.path.name, "kind": "negative", "padded": True})
    confusable = keyword_clip(folder / "confusable-0.wav", word="express")
    lines.append({"path": confusable.path.name, "kind": "confusable", "padded": True})
    real = folder / "real" / "computer"
    real.mkdir(parents=True)
    other_speech_clip(real / "0.wav", text="computer, turn on the lights")
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return manifest


def test_clips_bench_measures_both_daemons_and_saves_clips(shipped_model_path: Path, tmp_path: Path) -> None:
    """`python -m bench.clips` (the CPU budget of --save-clips) on 6 s of audio; no timing asserted."""
    if espeak_missing():
        pytest.skip(espeak_missing())
    out = tmp_path / "clips.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.clips", "--seconds", "6", "--repeats", "1", "--out", str(out)]
        + ["--model", str(shipped_model_path)],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["plain"]["ready_received"] and run["save_clips"]["ready_received"]
    assert run["plain"]["exit_code"] == run["save_clips"]["exit_code"] == 0
    assert run["clips_saved"] >= 1  # the word was heard and its clip written during the run
    assert len(result["difference_pp"]) == 1 and "median difference" in proc.stdout


def test_quick_bench_writes_valid_results(eval_manifest: Path, loud_model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--model",
            str(loud_model_path),
            "--eval-manifest",
            str(eval_manifest),
            "--real-speech",
            str(eval_manifest.parent / "real"),
            "--out-dir",
            str(out),
            "--live-s",
            "3",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "quick.json").read_text())
    assert results["errors"] == {}
    assert results["meta"]["quick"] is True
    sections = results["sections"]
    assert set(sections) == {"speed", "chunks", "live", "accuracy", "real"}
    # real people: measured per word where a manifest and an engine exist, else skipped in one line
    assert set(sections["real"]["words"]) == {"alexa", "computer"}
    for entry in sections["real"]["words"].values():
        assert "files" in entry or len(entry["skipped"].splitlines()) == 1

    speed = sections["speed"]["engines"]["ours"]
    assert speed["cpu_s_per_audio_hour"] > 0
    assert sections["speed"]["corpus_s"] > 0

    accuracy = sections["accuracy"]
    assert accuracy["eval_set"]["counts"] == {"positive": 2, "confusable": 1, "negative": 1, "real_speech": 1}
    ours = accuracy["engines"]["ours"]
    assert ours["replay_mismatched_clips"] == 0  # the threshold sweep replays what the Detector did
    op = ours["operating_point"]
    # The loud model fires on any loud audio: both keywords are found (with a latency), and the
    # other speech, the confusable and the real recording are false accepts.
    assert op["frr"] == 0.0
    assert op["latency"]["n"] == 2
    assert op["false_accepts"] >= 1
    assert op["confusable_fa_rate"] == 1.0
    assert op["real_speech_files_fired"] == 1
    assert len(accuracy["engines"]["ours"]["frr_at"]) == 3

    live = sections["live"]["engines"]["ours_cli"]
    assert live["ready_received"] is True
    assert live["exit_code"] == 0
    assert live["peak_rss_mb"] > 0

    table = (out / "quick.md").read_text()
    assert "wakeword (ours)" in table and results["meta"]["commit"] in table
    for peer in ("pocketsphinx", "openwakeword"):
        if peer in results["meta"]["engines"]:
            assert sections["speed"]["engines"][peer]["cpu_s_per_audio_hour"] > 0
        else:
            assert results["meta"]["unavailable"][peer]


def table_blocks(text: str) -> list[list[str]]:
    """Runs of consecutive `|` lines, as a Markdown reader sees tables."""
    blocks: list[list[str]] = []
    previous_was_row = False
    for line in text.splitlines():
        is_row = line.startswith("|")
        if is_row and previous_was_row:
            blocks[-1].append(line)
        elif is_row:
            blocks.append([line])
        previous_was_row = is_row
    return blocks


def test_table_ends_by_position_when_its_last_row_repeats_earlier_text(tmp_path: Path) -> None:
    """The last row repeats an earlier row and a note word for word: the whole table still comes
    out as one block, with the notes after it (searching for the last row's text cut it short)."""
    from bench.report import document

    table = [
        "| | ours | target |",
        "|---|---|---|",
        "| FRR | n/a | |",
        "| RSS | 75 | <= 80 |",
        "| FRR | n/a | |",
    ]
    notes = ["First note.", "", "| FRR | n/a | |"]
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n" + document("Benchmark of today.", table, notes))

    text = readme.read_text()
    assert table_blocks(text) == [table, ["| FRR | n/a | |"]]  # the table, then the note on its own
    assert text.endswith("| FRR | n/a | |\n\nFirst note.\n\n| FRR | n/a | |\n")


def test_markdown_keeps_every_row_in_one_table() -> None:
    from bench.report import markdown

    meta = {
        "date": "2026-01-01",
        "machine": {"cpu": "test CPU", "cores": 2},
        "commit": "abc1234",
        "model_label": "test model",
        "quick": True,
        "engines": ["ours"],
        "notes": ["a note"],
    }
    text = markdown({"meta": meta, "sections": {}, "errors": {"live": "boom"}})
    (table,) = table_blocks(text)
    assert table[0].startswith("| | wakeword (ours) |") and table[1].startswith("|---|")
    assert table[-1].startswith("| Pi Zero 2 W CPU % of one core")
    assert text.endswith("\n\n- a note\n\n- section live failed: boom\n")


def test_stop_process_lets_a_daemon_exit_on_sigterm_and_kills_one_that_ignores_it() -> None:
    import signal

    from bench.common import stop_process

    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_process(polite) == -signal.SIGTERM
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    assert stop_process(stubborn, timeout_s=0.5) == -signal.SIGKILL
    assert stop_process(stubborn) == -signal.SIGKILL  # already ended: its status, no signal sent
