"""The pure parts of the chaos soak (bench/chaos.py): program layout, fault schedule, scoring.

The soak itself runs for hours with real PulseAudio and mosquitto (`make chaos`); these check that
what it reports is computed right, in milliseconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import chaos
from bench.chaos import FAULT_GROUP, FAULT_KINDS, Fault, build_program, make_schedule, score

RATE = chaos.RATE


def _material(seed: int = 0):
    rng = np.random.default_rng(seed)
    words = [
        (f"w{i}", 0.5 * np.sin(np.arange(int(0.7 * RATE)) * 0.05 * (i + 1)).astype(np.float32))
        for i in range(3)
    ]
    negatives = {
        "speech": [rng.standard_normal(5 * RATE).astype(np.float32) * 0.1],
        "music": [np.sin(np.arange(3 * RATE) * 0.02).astype(np.float32)],
        "noise": [rng.standard_normal(RATE).astype(np.float32)],
    }
    return words, negatives


def test_program_lays_keywords_in_quiet_with_known_positions_and_bursts() -> None:
    words, negatives = _material()
    program = build_program(words, negatives, 600.0, np.random.default_rng(1), burst_every=4)
    assert program.audio.dtype == np.int16 and program.audio.size == 600 * RATE
    assert len(program.utterances) >= 20
    assert program.bursts and sum(u.burst for u in program.utterances) == chaos.BURST_SIZE * len(
        program.bursts
    )
    ends = [u.end_s for u in program.utterances]
    assert ends == sorted(ends) and ends[-1] < 600
    for u in program.utterances:
        # The keyword is where the layout says: loud inside, and no negative overlaps it or its window.
        a, b = int(u.start_s * RATE), int(u.end_s * RATE)
        assert np.abs(program.audio[a:b]).max() > 0.25 * 32767
        for _, s, e in program.segments:
            assert e <= u.start_s + 1e-6 or s >= u.end_s + chaos.UTTERANCE_AFTER_S - 1e-6
    burst = [u for u in program.utterances if u.burst][: chaos.BURST_SIZE]
    gaps = np.diff([u.end_s for u in burst])
    assert np.all(gaps > 1.5) and np.all(gaps < 3.0)  # beyond the refractory, close enough to pile up


def test_program_is_reproducible_from_the_seed() -> None:
    words, negatives = _material()
    a = build_program(words, negatives, 300.0, np.random.default_rng(5))
    b = build_program(words, negatives, 300.0, np.random.default_rng(5))
    assert a.utterances == b.utterances and np.array_equal(a.audio, b.audio)


@pytest.mark.parametrize("seconds", [300, 301, 600, 1800, 7200])
@pytest.mark.parametrize("seed", range(8))
def test_schedule_has_every_kind_no_same_group_overlap_and_some_overlap(seconds: int, seed: int) -> None:
    bursts = [float(b) for b in range(60, seconds - 60, 200)]
    faults = make_schedule(seconds, seed, bursts)
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    assert [f.start_s for f in faults] == sorted(f.start_s for f in faults)
    for f in faults:
        assert f.start_s >= chaos.WARMUP_S and f.end_s <= seconds - 15
        lo, hi = chaos.FAULT_DURATION_S[f.kind]
        assert lo <= f.duration_s <= hi
    pairs = [(a, b) for i, a in enumerate(faults) for b in faults[i + 1 :] if chaos._overlaps(a, b)]
    assert pairs, "at least one pair of faults overlaps"
    assert all(FAULT_GROUP[a.kind] != FAULT_GROUP[b.kind] for a, b in pairs)
    for f in faults:
        if f.kind == "hook_burst":
            assert any(abs(f.start_s - (b - 1.0)) < 1e-6 for b in bursts)


def test_schedule_is_seeded_and_longer_runs_get_more_faults() -> None:
    assert make_schedule(600, 4) == make_schedule(600, 4)
    assert make_schedule(600, 4) != make_schedule(600, 5)
    assert len(make_schedule(7200, 1)) > len(make_schedule(300, 1))
    with pytest.raises(ValueError):
        make_schedule(299, 1)


def test_score_counts_hits_misses_inside_and_outside_faults_and_false_accepts() -> None:
    expected = [(10.0, True), (30.0, True), (50.0, True), (70.0, False), (90.0, True)]
    windows = [(t - 1.0, t + 1.5) for t, _ in expected]
    faults = [(46.0, 48.0)]  # 50.0 is within its end + 5 s
    detections = [10.2, 49.9 + 10.0, 70.3, 150.0]  # 30 and 50 and 90 missed; 70 only live; 150 false
    result = score(expected, windows, detections, faults)
    assert result == {
        "utterances": 5,
        "expected_detections": 4,
        "detect_missed": 1,
        "detected": 1,
        "live_only": 1,
        "missed_outside_faults": 2,  # 30 and 90
        "missed_during_faults": 1,  # 50
        "false_accepts": 2,  # 59.9 and 150
        "false_accepts_during_faults": 0,
    }


def test_score_matches_each_detection_once_and_respects_the_tolerance() -> None:
    expected = [(10.0, True), (12.2, True)]
    windows = [(8.0, 11.5), (10.5, 13.7)]
    # One detection cannot count for two keywords; too early (-1.5 s) is not a match either.
    result = score(expected, windows, [10.5], [])
    assert (result["detected"], result["missed_outside_faults"]) == (1, 1)
    result = score(expected, windows, [8.4, 12.0], [])
    assert (result["detected"], result["false_accepts"]) == (1, 0)


def test_watchdog_misses_counts_gaps_longer_than_watchdog_sec() -> None:
    pings = [1.0, 6.0, 11.0, 30.0, 35.0]
    assert chaos.watchdog_misses(pings, 10.0, 0.0, 40.0) == 1
    assert chaos.watchdog_misses(pings, 10.0, 0.0, 50.0) == 2  # none since 35
    assert chaos.watchdog_misses([], 10.0, 0.0, 5.0) == 0


def test_merge_and_latency_and_unroll() -> None:
    assert chaos.merge_times([1.0, 1.2, 5.0, 1.1, 5.4, 9.0]) == [1.0, 5.0, 9.0]
    assert chaos.estimate_latency([10.3, 20.35, 99.0], [10.0, 20.0]) == pytest.approx(0.325)
    utterances = [chaos.Utterance(5.0, 6.0, "a"), chaos.Utterance(15.0, 16.0, "b")]
    program = chaos.Program(np.zeros(20 * RATE, np.int16), utterances, [], [])
    expected, windows = chaos.unroll(program, [6.4], 45.0, 1.5)
    assert expected == [(6.4, True), (16.0, False), (26.4, True), (36.0, False)]
    assert windows[2] == (25.0, 27.5)


def test_every_fault_kind_has_an_injector() -> None:
    assert set(chaos.INJECTORS) == set(FAULT_KINDS)
    assert all(chaos.INJECTORS[k]().kind == k for k in FAULT_KINDS)


def test_fault_end() -> None:
    assert Fault("mqtt_outage", 10.0, 60.0).end_s == 70.0
