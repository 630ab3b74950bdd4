"""The pure parts of the chaos soak (bench/chaos.py): program layout, fault schedule, scoring.

The soak itself runs for hours with real PulseAudio and mosquitto (`make chaos`); these check that
what it reports is computed right, in milliseconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import datetime

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
        "missed_outside_at": [30.0, 90.0],
        "lost_by_player": 0,
    }


def test_score_keeps_keywords_the_player_never_delivered_apart_from_daemon_misses() -> None:
    expected = [(10.0, True), (30.0, True), (50.0, True)]
    windows = [(t - 1.0, t + 1.5) for t, _ in expected]
    lost = [(29.5, 29.8), (9.0, 9.5)]  # 30's audio partly dropped; 10's too, but it was still heard
    result = score(expected, windows, [10.1], [], lost=lost)
    assert (result["detected"], result["lost_by_player"]) == (1, 1)
    assert result["missed_outside_faults"] == 1 and result["missed_outside_at"] == [50.0]


def test_delivered_at_follows_the_players_trace_of_written_and_queued_audio() -> None:
    t0 = 1000.0
    # written 10 s by 10 s with nothing queued; at 20 s, 18 s written and 2 s still queued
    trace = [(t0 + 10.0, 10 * RATE, 0), (t0 + 20.0, 18 * RATE, 2 * RATE)]
    heard = chaos.delivered_at(trace, t0, [t0 + 5.0, t0 + 10.25, t0 + 20.5])
    assert heard == pytest.approx([5.0, 10.25, 16.5])


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


def test_recovery_is_measured_from_the_fault_end_per_kind() -> None:
    stderr = [
        (100.5, "WARNING wakeword.audio: audio input lost: default microphone: ..."),
        (104.2, "INFO wakeword.audio: capturing again from default microphone after 3.7 s"),
        (200.0, "WARNING wakeword.mqtt: lost connection to mqtt://127.0.0.1:1"),
        (262.5, "INFO wakeword.mqtt: connected to mqtt://127.0.0.1:1"),
        (300.1, "INFO wakeword.listen: reloaded: listening for espresso"),
        (400.2, "ERROR wakeword.listen: reload failed, keeping the running configuration: ..."),
    ]
    assert chaos.recovery_for("pulse_restart", 100.0, 103.0, stderr, [], []) == pytest.approx(1.2)
    assert chaos.recovery_for("sink_reload", 150.0, 153.0, stderr, [], []) == 0.0  # stream survived
    assert chaos.recovery_for("mqtt_outage", 200.0, 260.0, stderr, [], []) == pytest.approx(2.5)
    assert chaos.recovery_for("mqtt_outage", 500.0, 560.0, stderr, [], []) is None  # never came back
    # Connected a moment before the injector noted the broker was up: recovered at once.
    assert chaos.recovery_for("mqtt_outage", 200.0, 262.6, stderr, [], []) == 0.0
    assert chaos.recovery_for("sighup_good", 300.0, 301.0, stderr, [], []) == pytest.approx(0.1)
    assert chaos.recovery_for("sighup_bad", 400.0, 402.0, stderr, [], []) == pytest.approx(0.2)
    # Hooks: the first detection after the end ran its hook 0.05 s later; or never.
    assert chaos.recovery_for("hook_hang", 10.0, 30.0, [], [25.0, 41.0], [25.01, 41.05]) == pytest.approx(
        0.05
    )
    assert chaos.recovery_for("hook_burst", 10.0, 30.0, [], [41.0], [25.0]) is None


def test_epoch_shift_estimates_the_playback_delay_between_audio_faults() -> None:
    offline = [10.0, 20.0, 30.0, 40.0]
    live = [10.5, 20.5, 31.8, 41.8]  # the delay grew from 0.5 to 1.8 s at the audio fault at 25 s
    shifted, delays = chaos.epoch_shift(live, offline, [25.0])
    assert delays == [pytest.approx(0.5), pytest.approx(1.8)]
    assert shifted == [pytest.approx(t) for t in offline]


def _raw() -> dict:
    t0 = 1000.0

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t0 + t).astimezone().isoformat(timespec="milliseconds")

    utterances = [
        chaos.Utterance(9.0, 10.0, "a"),
        chaos.Utterance(59.0, 60.0, "b"),
        chaos.Utterance(99.0, 100.0, "c"),
    ]
    live = [10.8, 100.8]  # "b" (at 60.5, within the MQTT outage end + 5 s) is missed
    return {
        "seconds": 300.0,
        "seed": 1,
        "t0": t0,
        "crashes": 0,
        "restarts": 0,
        "exit_code": 0,
        "player_restarts": 0,
        "run_dir": "/tmp/x",
        "program": {
            "seconds": 150.0,
            "utterances": [asdict(u) for u in utterances],
            "offline": [10.5, 60.5, 100.5],
        },
        "schedule": [],
        "applied": [
            {
                "kind": "mqtt_outage",
                "start": t0 + 50.0,
                "end": t0 + 58.0,
                "recovery_s": None,
                "error": None,
                "details": {},
            }
        ],
        "stdout_lines": [(t0 + t + 0.01, json.dumps({"time": t, "wall_time": iso(t)})) for t in live],
        "stderr_lines": [
            (t0 + 60.0, "INFO wakeword.mqtt: connected to mqtt://127.0.0.1:1"),
            (t0 + 70.0, "hook x skipped for espresso"),
        ],
        "hook_log": "".join(f"{t0 + t + 0.02} " + json.dumps({"time": iso(t)}) + "\n" for t in live),
        "mqtt": [(t0 + 101.3, "chaos/ww/detection", json.dumps({"time": iso(100.8)}))],
        "notify": [(t0 - 1, {"READY": "1"}), *((t0 + k * 5.0, {"WATCHDOG": "1"}) for k in range(61))],
        "rss": [(float(t), 100.0 + t / 300) for t in range(0, 300, 5)],
    }


def test_analyse_turns_a_raw_record_into_the_issue_fields() -> None:
    result = chaos.analyse(_raw())
    summary, details = result["summary"], result["details"]
    assert list(summary) == [
        "seconds", "faults", "crashes", "restarts_needed", "expected_detections", "detected",
        "missed_outside_faults", "missed_during_faults", "false_accepts", "max_recovery_s",
        "watchdog_misses", "rss_start_mb", "rss_end_mb", "mqtt_published", "mqtt_lost", "hook_runs",
        "hook_skipped",
    ]  # fmt: skip
    assert summary["faults"]["mqtt_outage"] == 1 and sum(summary["faults"].values()) == 1
    # Played twice (300 s of a 150 s program): 6 keywords, 2 detected, "b" at 60.5 is within the
    # outage's end + 5 s, the other three were never heard (nothing live after 100.8 s).
    assert summary["expected_detections"] == 6 and summary["detected"] == 2
    assert summary["missed_during_faults"] == 1 and summary["missed_outside_faults"] == 3
    assert summary["false_accepts"] == 0
    assert summary["max_recovery_s"] == pytest.approx(2.0)
    assert summary["watchdog_misses"] == 0
    assert summary["mqtt_published"] == 1 and summary["mqtt_lost"] == 1  # the one at 10.8 never arrived
    assert (summary["hook_runs"], summary["hook_skipped"]) == (2, 1)
    assert details["playback_delay_s"] == [pytest.approx(0.3, abs=0.01)]
    assert "crashes" in chaos.table(summary, details)


def test_analyse_scores_against_the_players_trace_when_it_has_one() -> None:
    """From 80 s on the player reports 3 s of audio queued: the detection of "c" comes 3 s late on
    the wall clock and still matches; one delay for the whole run would put it (or "a") outside
    the tolerance. A keyword whose audio the player dropped is reported apart, not as a miss."""
    raw = _raw()
    t0 = raw["t0"]
    live = [10.8, 103.8]
    raw["stdout_lines"] = [(t0 + t + 0.01, json.dumps({"wall_time": _iso(t0 + t)})) for t in live]
    raw["hook_log"] = "".join(f"{t0 + t + 0.02} " + json.dumps({"time": _iso(t0 + t)}) + "\n" for t in live)
    raw["mqtt"] = []
    raw["player_trace"] = [(t0 + t, t * RATE, 0) for t in range(0, 80)] + [
        (t0 + t, t * RATE, 3 * RATE) for t in range(80, 300)
    ]
    raw["player_dropped"] = [(158 * RATE, 3 * RATE)]  # "a" of the second play (159-160 s)
    summary, details = chaos.analyse(raw).values()
    assert summary["detected"] == 2
    assert summary["missed_outside_faults"] == 2 and details["lost_by_player"] == 1
    assert details["playback_delay_s"] == [pytest.approx(0.3, abs=0.01)]
    assert details["player_dropped_s"] == 3.0 and details["player_queue_max_s"] == 3.0
    without = _raw()
    without.update({k: raw[k] for k in ("stdout_lines", "hook_log", "mqtt")})
    assert chaos.analyse(without)["summary"]["detected"] < 2


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def test_player_keeps_its_pacat_queue_bounded_across_a_sound_server_restart() -> None:
    """Real pacat into a real PulseAudio null sink, the server killed and restarted: a fresh pacat
    takes about 1.5 s to read its stdin, and an unbounded queue kept that as a lasting delay."""
    from tests.virtual_mic import VirtualMicUnavailable, start_virtual_mic

    try:
        mic = start_virtual_mic("vmic", RATE, 1)
    except VirtualMicUnavailable as exc:
        pytest.skip(str(exc))
    audio = (np.random.default_rng(0).standard_normal(20 * RATE) * 1000).astype(np.int16)
    player = chaos.Player(audio, mic.env, mic.sink)
    try:
        player.start()
        player.started.wait(10)
        time.sleep(4.0)
        mic.kill()
        time.sleep(2.0)
        mic.restart()
        time.sleep(5.0)
    finally:
        player.stop_event.set()
        player.join(5)
        mic.stop()
    assert player.restarts == 1
    assert player.dropped, "the outage's audio is recorded as dropped"
    queued = [q for *_, q in player.trace]
    assert max(queued) <= chaos.Player.MAX_QUEUE_S * RATE
    t, written, q = player.trace[-1]
    lag = (t - player.t0) - (written - q) / RATE  # wall clock minus what pacat has taken
    assert lag < chaos.Player.MAX_QUEUE_S + 0.1


def test_audio_faults_start_one_playback_delay_earlier_on_the_program_clock() -> None:
    from bench.chaos import on_program_clock

    intervals = [(100.0, 104.0), (200.0, 260.0), (300.0, 303.0)]
    kinds = ["pulse_restart", "mqtt_outage", "sink_reload"]
    delays = [0.05, 1.9, 1.8]  # before the first audio fault, between them, after the last
    assert on_program_clock(intervals, kinds, delays) == [(99.95, 104.0), (200.0, 260.0), (298.1, 303.0)]


def test_replay_heard_runs_detect_on_the_daemons_dump(loud_model_path, tmp_path) -> None:
    """What the daemon heard, replayed through the file path: two bursts give two detections."""
    from tests.speech import bursts_clip

    assert chaos.replay_heard(tmp_path, str(loud_model_path)) is None  # no dump: older runs
    bursts_clip(tmp_path / chaos.HEARD_WAV, [0.5, 2.1], 3.3)
    assert chaos.replay_heard(tmp_path, None) is None
    replay = chaos.replay_heard(tmp_path, str(loud_model_path))
    assert replay is not None and (replay["seconds"], replay["detections"], replay["restarts"]) == (3.3, 2, 0)
    assert [0.5 < replay["times"][0] < 0.6, 2.1 < replay["times"][1] < 2.2] == [True, True]
    gone = chaos.replay_heard(tmp_path, str(tmp_path / "moved.onnx"))  # --analyse after the model moved
    assert gone is not None and "model file not found" in gone["error"]
    (tmp_path / chaos.HEARD_WAV).write_bytes(b"RIFF")  # killed mid-write
    assert "error" in chaos.replay_heard(tmp_path, str(loud_model_path))


def test_analyse_counts_a_keyword_still_in_the_capture_pipe_at_an_audio_fault_as_during_it() -> None:
    """The sound server dies 0.1 s after "b"'s offline detection time: its audio was delivered,
    but the daemon, 0.3 s behind the player, had not yet heard the frames that fire on it."""
    raw = _raw()
    t0 = raw["t0"]
    raw["player_trace"] = [(t0 + t, t * RATE, 0) for t in range(0, 300)]
    raw["applied"] = [
        {"kind": "pulse_restart", "start": t0 + 60.6, "end": t0 + 64.0, "recovery_s": None, "error": None,
         "details": {}}
    ]  # fmt: skip
    summary = chaos.analyse(raw)["summary"]
    assert summary["missed_during_faults"] == 1 and summary["missed_outside_faults"] == 3
    raw["applied"][0].update(start=t0 + 61.0, end=t0 + 64.0)  # past the pipe: "b" was the daemon's to hear
    summary = chaos.analyse(raw)["summary"]
    assert summary["missed_during_faults"] == 0 and summary["missed_outside_faults"] == 4


def test_stream_to_wall_and_unmatched() -> None:
    pairs = [(10.0, 1000.0), (50.0, 1041.5)]  # 1.5 s of audio was lost between them
    assert chaos.stream_to_wall(pairs, [10.02, 12.0, 49.0, 60.0]) == pytest.approx(
        [1000.0, 1002.0, 1040.5, 1051.5]
    )
    assert chaos.stream_to_wall([], [3.0]) == [3.0]
    assert chaos.unmatched([1.0, 2.0, 3.0], [1.01, 2.5]) == [2.0, 3.0]


def test_analyse_scores_wakeword_detect_on_the_heard_audio_as_the_yardstick(
    loud_model_path, tmp_path
) -> None:
    """The daemon's dump, replayed: it fires on a keyword the live run missed (so the live run
    falls short of the yardstick by one), and its times line up with the live ones on the stream
    clock."""
    from tests.speech import bursts_clip
    from wakeword.engine import Detector, detect_file

    heard = bursts_clip(tmp_path / chaos.HEARD_WAV, [10.75, 100.75, 160.75], 300.0)
    times = [d.time_s for d in detect_file(heard, Detector([loud_model_path]))]
    assert len(times) == 3
    raw = _raw()
    t0 = raw["t0"]
    live = times[:2]  # the daemon missed the third (160.75 s, outside any fault)
    raw["stdout_lines"] = [(t0 + t + 0.01, json.dumps({"time": t, "wall_time": _iso(t0 + t)})) for t in live]
    raw["hook_log"] = "".join(f"{t0 + t + 0.02} " + json.dumps({"time": _iso(t0 + t)}) + "\n" for t in live)
    raw["player_trace"] = [(t0 + t, t * RATE, 0) for t in range(0, 300)]
    raw.update(run_dir=str(tmp_path), model=str(loud_model_path))
    summary, details = chaos.analyse(raw).values()
    file_path = details["file_path"]
    assert file_path["detections"] == 3
    assert summary["missed_outside_faults"] == file_path["missed_outside_faults"] + 1
    assert file_path["file_not_live_s"] == [round(times[2], 3)] and file_path["live_not_file_s"] == []
    assert "detect on the heard audio" in chaos.table(summary, details)
