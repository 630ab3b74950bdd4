"""bench/real_misses.py: the recording measures it reports, its exact test, and its command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import real_misses as rm

RATE = 16000


def _burst(
    length_s: float, tone_hz: float = 1000.0, amplitude: float = 0.1, floor: float = 1e-4
) -> np.ndarray:
    """A tone of ``length_s`` in the middle of 2 s of faint noise, like a word in a quiet room."""
    rng = np.random.default_rng(int(length_s * 1000))
    samples = rng.normal(0.0, floor, 2 * RATE)
    start, n = RATE // 2, int(length_s * RATE)
    samples[start : start + n] += amplitude * np.sin(2 * np.pi * tone_hz * np.arange(n) / RATE)
    return samples.astype(np.float32)


def test_profile_measures_span_level_floor_and_band_of_a_known_burst() -> None:
    found = rm.profile(_burst(0.5, tone_hz=1000.0, amplitude=0.1, floor=1e-4))
    assert found.word_span_s == pytest.approx(0.5, abs=0.02)
    assert found.level_dbfs == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.5)  # a sine's RMS
    assert found.peak_to_floor_db == pytest.approx(20 * np.log10((0.1 / np.sqrt(2)) / 1e-4), abs=1.0)
    assert 950 <= found.bandwidth_hz <= 1100
    assert rm.profile(_burst(0.5, tone_hz=3000.0)).bandwidth_hz > 2900
    assert rm.profile(_burst(0.9)).word_span_s == pytest.approx(0.9, abs=0.02)


def test_fisher_exact_matches_hand_computed_hypergeometric_tails() -> None:
    # [[3, 1], [1, 3]]: tables with a = 0..4 have probabilities 1, 16, 36, 16, 1 (/70); two-sided
    # p sums those no likelier than a = 3: (1 + 16 + 16 + 1) / 70.
    assert rm.fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70)
    assert rm.fisher_exact(4, 0, 0, 4) == pytest.approx(2 / 70)
    assert rm.fisher_exact(2, 2, 2, 2) == pytest.approx(1.0)


def _run(tmp_path: Path, lengths: list[float], hits: str) -> Path:
    folder = tmp_path / "computer"
    folder.mkdir()
    names = []
    for i, length in enumerate(lengths):
        names.append(f"rec{i:02d}.wav")
        sf.write(folder / names[-1], _burst(length), RATE, subtype="PCM_16")
    point = {"threshold": 0.5, "hits_clean": hits}
    result = {
        "meta": {"date": "today", "word": "computer", "real_dir": str(folder), "recording_names": names},
        "engines": {"ours": {"label": "wakeword x.onnx", "operating_points": {"0.5 FA/h": point}}},
    }
    path = tmp_path / "real-people-computer.json"
    path.write_text(json.dumps(result))
    return path


def test_long_recordings_that_are_missed_land_in_the_top_span_quartile(tmp_path: Path) -> None:
    lengths = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.8, 0.85, 0.9, 0.95]
    hits = "111111111000"  # the three longest missed
    result = json.loads(_run(tmp_path, lengths, hits).read_text())

    report = rm.analyse(result, "ours", "0.5 FA/h", "clean")

    quartiles = report["by_property"]["word_span_s"]["quartiles"]
    assert [q["missed"] for q in quartiles] == [0, 0, 0, 3]
    assert [q["recordings"] for q in quartiles] == [3, 3, 3, 3]
    assert report["by_property"]["word_span_s"]["p_lowest_vs_highest"] == pytest.approx(
        rm.fisher_exact(0, 3, 3, 0)
    )
    assert report["missed"] == 3


def test_the_command_line_writes_a_report_and_names_what_a_run_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _run(tmp_path, [0.3, 0.5, 0.7, 0.9], "1110")
    assert rm.main([str(path), "--out", str(tmp_path / "misses-0.5fah")]) == 0
    assert "| word_span_s |" in (tmp_path / "misses-0.5fah.md").read_text()
    assert len(json.loads((tmp_path / "misses-0.5fah.json").read_text())["profiles"]) == 4
    capsys.readouterr()

    assert rm.main([str(path), "--engine", "microwakeword"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: no engine 'microwakeword' in this run (it has: ours)"
