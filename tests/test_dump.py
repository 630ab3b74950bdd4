"""``wakeword listen --dump-audio FILE``: the WAV holds exactly what the detector heard, on the stream clock.

So `wakeword detect FILE` replays a live run offline with the same detections (what
bench/live_vs_file.py relies on to tell capture problems from detector behaviour).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.speech import bursts_clip
from wakeword.audio import FileSource
from wakeword.config import AudioSettings, Config, ModelEntry
from wakeword.dump import AudioDump, read_restarts, restarts_path
from wakeword.engine import Detector, Restart, detect_file, detect_samples
from wakeword.errors import AudioError
from wakeword.listen import run_listen

RATE = 16000


def _detect_json(model: Path, audio: Path) -> subprocess.CompletedProcess:
    """The real `wakeword detect --json` on one file."""
    return subprocess.run(
        [sys.executable, "-m", "wakeword.cli", "detect", "--json", "--model", str(model), str(audio)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dump_tap_writes_what_the_detector_heard_and_replays_to_the_same_detections(
    loud_model_path: Path, tmp_path: Path
) -> None:
    clip = bursts_clip(tmp_path / "bursts.wav", [0.5, 2.1], 3.3)
    dump = tmp_path / "heard.wav"
    seen = []
    config = Config(models=(ModelEntry(loud_model_path),), audio=AudioSettings(input=str(clip)))
    code = run_listen(
        config, on_detection=seen.append, source=FileSource(clip, realtime=False), taps=[AudioDump(dump)]
    )
    assert code == 0
    heard, rate = sf.read(dump, dtype="int16")
    played, _ = sf.read(clip, dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(heard, played)
    replay = detect_file(dump, Detector([loud_model_path]))
    assert len(seen) == 2
    assert [(d.frame, d.time_s) for d in replay] == [(d.frame, d.time_s) for d in seen]


def test_dump_tap_fills_dropped_audio_with_zeros_to_stay_on_the_stream_clock(tmp_path: Path) -> None:
    dump = AudioDump(tmp_path / "heard.wav")
    ones = np.ones(100, dtype=np.int16)
    dump.step(ones, 0, [], {})
    dump.step(2 * ones, 300, [], {})  # 200 samples dropped before this chunk
    dump.finish()
    dump.close()
    heard, _ = sf.read(tmp_path / "heard.wav", dtype="int16")
    np.testing.assert_array_equal(heard, np.concatenate([ones, np.zeros(200, np.int16), 2 * ones]))


def test_listen_dump_audio_option(loud_model_path: Path, tmp_path: Path) -> None:
    """The real command: `listen --dump-audio` writes the WAV; its detections match `detect` on it."""
    clip = bursts_clip(tmp_path / "bursts.wav", [0.5], 2.0)
    dump = tmp_path / "heard.wav"
    args = ["listen", "--input", str(clip), "--no-realtime", "--model", str(loud_model_path), "--json"]
    listen = subprocess.run(
        [sys.executable, "-m", "wakeword.cli", *args, "--dump-audio", str(dump)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listen.returncode == 0, listen.stderr
    detect = _detect_json(loud_model_path, dump)
    live = [json.loads(line)["time"] for line in listen.stdout.splitlines()]
    offline = [json.loads(line)["time"] for line in detect.stdout.splitlines()]
    assert len(live) == 1
    assert live == offline
    assert sf.info(str(dump)).frames == sf.info(str(clip)).frames


def test_a_live_run_with_dropped_audio_replays_exactly_with_the_noted_restarts(
    loud_model_path: Path, tmp_path: Path
) -> None:
    """A real overrun (a sink stalls the loop 1.5 s with a 0.5 s ring buffer) restarts the live
    detector; the dump notes where, and `detect` on the dump gives the live detections frame for
    frame. Replayed without the note, the detector would run across the hole and count frames
    from the file's start instead."""
    clip = bursts_clip(tmp_path / "clip.wav", [0.3, 2.6], 3.5)
    dump = tmp_path / "heard.wav"
    seen = []

    def stalling_sink(detection) -> None:
        seen.append(detection)
        if len(seen) == 1:
            time.sleep(1.5)

    config = Config(models=(ModelEntry(loud_model_path),), audio=AudioSettings(input=str(clip)))
    source = FileSource(clip, realtime=True, buffer_s=0.5)
    code = run_listen(config, on_detection=stalling_sink, source=source, taps=[AudioDump(dump)])
    assert code == 0 and len(seen) == 2
    restarts = read_restarts(dump)
    assert [r.unheard for r in restarts] == [source.dropped_samples]
    heard, _ = sf.read(dump, dtype="int16")
    hole = heard[restarts[0].position - restarts[0].unheard : restarts[0].position]
    assert hole.size == source.dropped_samples and not hole.any()

    live = [(d.frame, d.time_s) for d in seen]
    assert [(d.frame, d.time_s) for d in detect_file(dump, Detector([loud_model_path]))] == live
    detect = _detect_json(loud_model_path, dump)
    assert detect.returncode == 0, detect.stderr
    assert [(r["frame"], r["time"]) for r in map(json.loads, detect.stdout.splitlines())] == [
        (f, round(t, 3)) for f, t in live
    ]
    naive = detect_samples(heard, Detector([loud_model_path]))  # the recording without its restarts
    assert [(d.frame, d.time_s) for d in naive] != live


def test_dump_notes_each_restart_with_the_unheard_samples_before_it(tmp_path: Path) -> None:
    dump = AudioDump(tmp_path / "heard.wav")
    stale = restarts_path(tmp_path / "other.wav")
    dump.attach(None, 0.0)  # the first detector, at the stream's start: nothing to note
    dump.step(np.ones(1000, np.int16), 0, [], {})
    dump.attach(None, 1000 / RATE)  # a reload: nothing was dropped
    dump.step(np.ones(500, np.int16), 1000, [], {})
    dump.attach(None, 1800 / RATE)  # after 300 dropped samples
    dump.step(np.ones(200, np.int16), 1800, [], {})
    dump.close()
    assert read_restarts(tmp_path / "heard.wav") == [Restart(1000, 0), Restart(1800, 300)]
    assert not stale.exists() and read_restarts(tmp_path / "other.wav") == []  # an ordinary file
    AudioDump(tmp_path / "heard.wav").close()  # a new recording at the same path: the old notes go
    assert read_restarts(tmp_path / "heard.wav") == []


def test_a_damaged_restarts_note_is_one_clear_error(loud_model_path: Path, tmp_path: Path) -> None:
    clip = bursts_clip(tmp_path / "heard.wav", [0.5], 2.0)
    restarts_path(clip).write_text("# notes\n16000 oops\n")
    with pytest.raises(AudioError, match=r"heard\.wav\.restarts, line 2: expected two whole numbers"):
        read_restarts(clip)
    restarts_path(clip).write_text("100 200\n")
    with pytest.raises(AudioError, match="impossible"):
        read_restarts(clip)
    detect = subprocess.run(
        [sys.executable, "-m", "wakeword.cli", "detect", "--model", str(loud_model_path), str(clip)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert detect.returncode == 4
    assert "heard.wav.restarts, line 1" in detect.stderr and "Traceback" not in detect.stderr
