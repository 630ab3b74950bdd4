"""bench/synthetic_pairs.py: per-clip outcomes, the quiet-threshold rule and the pairing, on hand-made
probabilities with the shipped model's real Debouncer settings (a few milliseconds). The full run on
synthesised clips is exercised by `make model-smoke`, which pairs the smoke model with its ensemble."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the evaluation items come from training/ (the training extra)")

from bench import synthetic_pairs as sp  # noqa: E402
from training.evaluate import EvalConfig, Item  # noqa: E402
from wakeword.model import WakeWordModel  # noqa: E402

RATE = 16000
FPS = 100  # the shipped model's frames per second (10 ms hop)


def _bump(seconds: float, at_s: float, level: float, frames: int = 15) -> np.ndarray:
    probs = np.zeros(int(seconds * FPS), dtype=np.float32)
    probs[int(at_s * FPS) : int(at_s * FPS) + frames] = level
    return probs


def _items_and_probs() -> tuple[list[Item], list[np.ndarray]]:
    """Two positives at 20 dB (heard, missed), one at 0 dB (heard), a 120 s stream with one bump
    of 0.72, a sound-alike that scores 0.6, and a real recording of another word that scores nothing."""
    silent = lambda s: np.zeros(int(s * RATE), dtype=np.int16)  # noqa: E731
    items = [
        Item("positive", silent(3), start_s=1.0, end_s=1.5, snr_db=20.0),
        Item("positive", silent(3), start_s=1.0, end_s=1.5, snr_db=20.0),
        Item("positive", silent(3), start_s=1.0, end_s=1.5, snr_db=0.0),
        Item("negative_stream", silent(120)),
        Item("confusable", silent(3)),
        Item("real_speech", silent(3)),
    ]
    probs = [_bump(3, 1.55, 0.99), np.zeros(300, np.float32), _bump(3, 1.6, 0.9), _bump(120, 60.0, 0.72),
             _bump(3, 1.5, 0.6), np.zeros(300, np.float32)]  # fmt: skip
    return items, probs


@pytest.fixture(scope="module")
def model(shipped_model_path: Path) -> WakeWordModel:
    return WakeWordModel.load(shipped_model_path)


def test_outcome_flags_each_clip_by_what_the_debouncer_fired(model: WakeWordModel) -> None:
    items, probs = _items_and_probs()
    config = EvalConfig()
    low = sp.outcome(
        model, items, probs, replace(model.metadata.detector, threshold=0.5, patience_frames=3), config
    )
    assert low.missed == [False, True]  # only SNR >= 5 dB clips count toward the target
    assert low.missed_all == [False, True, False]
    assert low.fa_per_hour == pytest.approx(30.0)  # one false accept in 120 s
    assert low.sound_alikes_fired == [True]
    assert low.real_speech_fired == [False]

    high = sp.outcome(
        model, items, probs, replace(model.metadata.detector, threshold=0.8, patience_frames=3), config
    )
    assert high.fa_per_hour == 0.0
    assert high.sound_alikes_fired == [False]
    assert high.missed_all == [False, True, False]
    assert high.summary()["missed_snr_ge_5db"] == 0.5


def test_quiet_threshold_is_the_lowest_grid_point_meeting_the_target(model: WakeWordModel) -> None:
    items, probs = _items_and_probs()
    config = EvalConfig()
    rates = sp.stream_fa_rates(
        model, items, probs, replace(model.metadata.detector, patience_frames=3), config
    )
    assert set(rates) == set(config.thresholds)
    # the stream bump reaches 0.72: every grid threshold up to 0.7 fires on it once (30 FA/h), 0.75 is quiet
    assert {t for t, fa in rates.items() if fa == pytest.approx(30.0)} == {
        t for t in config.thresholds if t <= 0.7
    }
    assert sp.lowest_quiet_threshold(rates, target=0.5) == 0.75
    assert sp.lowest_quiet_threshold(rates, target=30.0) == min(config.thresholds)
    # patience longer than the bump: nothing ever fires, so the lowest threshold wins
    long = sp.stream_fa_rates(
        model, items, probs, replace(model.metadata.detector, patience_frames=20), config
    )
    assert sp.lowest_quiet_threshold(long, target=0.5) == min(config.thresholds)
    # nothing quiet enough: the quietest threshold, the highest among equals
    assert sp.lowest_quiet_threshold({0.5: 3.0, 0.8: 1.0, 0.9: 1.0}, target=0.5) == 0.9


def test_pairing_counts_only_discordant_clips() -> None:
    reference = [True, True, False, False, True]  # e.g. heard flags
    other = [False, True, True, True, True]
    cell = sp.paired(reference, other)
    assert cell["only_reference"] == 1
    assert cell["only_other"] == 2
    assert cell["p_mcnemar"] == pytest.approx(1.0)
    assert sp.paired([True] * 8, [False] * 8)["p_mcnemar"] == pytest.approx(2 / 2**8)


def test_compare_pairs_every_model_with_the_reference_at_each_point(model: WakeWordModel) -> None:
    items, probs = _items_and_probs()
    config = EvalConfig()
    deaf = [p if it.kind != "positive" else np.zeros_like(p) for it, p in zip(items, probs, strict=True)]
    outcomes = {
        "a.onnx": sp.operating_points(model, items, probs, config),
        "b.onnx": sp.operating_points(model, items, deaf, config),  # hears no positive, fires the same
    }
    table = sp.compare(outcomes, "a.onnx")
    assert set(table) == {sp.DEFAULT, "0.5 FA/h", "1 FA/h"}
    assert set(table["0.5 FA/h"]) == {"b.onnx"}
    cell = table["0.5 FA/h"]["b.onnx"]
    # at 0.75 the reference hears the one 20 dB clip it can; b hears none; neither fires on the sound-alike
    assert cell["positives_heard_snr_ge_5db"] == {"only_reference": 1, "only_other": 0, "p_mcnemar": 1.0}
    assert cell["sound_alikes_fired"]["only_reference"] == cell["sound_alikes_fired"]["only_other"] == 0
    summary = outcomes["b.onnx"]["0.5 FA/h"].summary()
    assert summary["missed_snr_ge_5db_bits"] == "11" and summary["sound_alikes_fired_bits"] == "0"


def test_missing_clips_are_one_line_naming_the_command(
    shipped_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--word", "espresso", "--model", str(shipped_model_path), "--also-model", str(shipped_model_path),
            "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]  # fmt: skip
    assert sp.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "make model" in err and "\n" not in err
    assert not (tmp_path / "out.json").exists()


def test_a_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.jsonl").write_text("")
    missing = tmp_path / "nope.onnx"
    argv = ["--model", str(missing), "--also-model", str(missing), "--data-dir", str(tmp_path)]
    assert sp.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope.onnx" in err and "\n" not in err
