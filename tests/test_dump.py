"""``wakeword listen --dump-audio FILE``: the WAV holds exactly what the detector heard, on the stream clock.

So `wakeword detect FILE` replays a live run offline with the same detections (what
bench/live_vs_file.py relies on to tell capture problems from detector behaviour).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.speech import bursts_clip
from wakeword.audio import FileSource
from wakeword.config import AudioSettings, Config, ModelEntry
from wakeword.dump import AudioDump
from wakeword.engine import Detector, detect_file
from wakeword.listen import run_listen

RATE = 16000


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
    detect = subprocess.run(
        [
            sys.executable,
            "-m",
            "wakeword.cli",
            "detect",
            "--json",
            "--model",
            str(loud_model_path),
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    live = [json.loads(line)["time"] for line in listen.stdout.splitlines()]
    offline = [json.loads(line)["time"] for line in detect.stdout.splitlines()]
    assert len(live) == 1
    assert live == offline
    assert sf.info(str(dump)).frames == sf.info(str(clip)).frames
