"""Saved clips (``listen --save-clips``): real audio through the live loop, real files on disk.

The word is a held-out synthetic "espresso" (an espeak-ng accent never trained on, tests/speech.py)
played into the PulseAudio virtual microphone; the saved WAV must contain it, which the shipped
model checks by detecting it again. The disk-failure test needs a directory root cannot write
(tests run as root, so permissions do not stop it): ``chattr +i`` does that on ext4 here, and the
test skips, saying why, where the file system refuses the attribute.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.speech import HELD_OUT_VOICE, RATE, espeak_missing, synthesize
from tests.virtual_mic import VirtualMic, make_virtual_mic_fixture
from wakeword.audio import FileSource, MicrophoneSource
from wakeword.clips import AudioHistory, Clip, ClipStore, NearMissTracker
from wakeword.config import AudioSettings, ClipSettings, Config, ModelEntry
from wakeword.engine import Detector, detect_file
from wakeword.listen import run_listen

virtual_mic = make_virtual_mic_fixture(scope="module")


@pytest.fixture(scope="module")
def word() -> np.ndarray:
    reason = espeak_missing()
    if reason:
        pytest.skip(reason)
    speech = synthesize("espresso", voice=HELD_OUT_VOICE)
    return (0.3 * speech / np.abs(speech).max()).astype(np.float32)


@pytest.fixture(scope="module")
def other() -> np.ndarray:
    speech = synthesize("Turn left at the corner, then walk to the station.", voice=HELD_OUT_VOICE)
    return (0.3 * speech / np.abs(speech).max()).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def _wav(path: Path, *parts: np.ndarray) -> Path:
    sf.write(str(path), np.concatenate(parts), RATE, subtype="PCM_16")
    return path


def _config(model: Path, clips: ClipSettings, threshold: float | None = None) -> Config:
    return Config(models=(ModelEntry(model, threshold=threshold),), audio=AudioSettings(save_clips=clips))


def _clips(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.wav"))


# --------------------------------------------------------------------------- end to end


def test_live_microphone_detection_is_saved_with_the_word_in_it(
    virtual_mic: VirtualMic, shipped_model_path: Path, word, other, tmp_path: Path
) -> None:
    played = _wav(tmp_path / "played.wav", _silence(0.5), word, _silence(1.0), other, _silence(0.3))
    folder = tmp_path / "clips"
    seen = []
    stop = threading.Event()
    ready = threading.Event()

    class Ready:
        def ready(self, wake_words) -> None:
            ready.set()

        def heartbeat(self, stats) -> None:
            pass

        def stopping(self) -> None:
            pass

    def play_then_stop() -> None:
        try:
            if ready.wait(30):
                time.sleep(0.3)
                virtual_mic.play(played)
                time.sleep(1.0)  # the 0.5 s after the word, and what is in flight
        finally:
            stop.set()

    helper = threading.Thread(target=play_then_stop, daemon=True)
    helper.start()
    code = run_listen(
        _config(shipped_model_path, ClipSettings(dir=folder)),
        lifecycle=Ready(),
        stop_event=stop,
        on_detection=seen.append,
        source=MicrophoneSource("pulse"),
    )
    helper.join()
    assert code == 0
    assert [d.wake_word for d in seen] == ["espresso"]
    (wav,) = _clips(folder)
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels) == (16000, 1)
    assert info.duration == pytest.approx(2.0, abs=0.01)
    again = detect_file(wav, Detector([shipped_model_path]))
    assert [d.wake_word for d in again] == ["espresso"]  # the word is in the clip
    sidecar = json.loads(wav.with_suffix(".json").read_text())
    assert sidecar["kind"] == "detection" and sidecar["wake_word"] == "espresso"
    assert sidecar["score"] == pytest.approx(seen[0].score, abs=1e-4)
    assert sidecar["stream_time_s"] == pytest.approx(seen[0].time_s, abs=1e-3)
    assert sidecar["event_offset_s"] == pytest.approx(1.5, abs=1e-3)
    assert sidecar["audio"] == wav.name and "T" in sidecar["wall_time"]
    assert sidecar["model"]["path"] == str(shipped_model_path.resolve())
    assert len(sidecar["model"]["sha256"]) == 64
    assert set(sidecar["detector"]) == {
        "threshold",
        "smoothing_frames",
        "patience_frames",
        "refractory_s",
        "state_reset_s",
        "state_warm_s",
    }
    # Audio of someone's home: private directories and files.
    for path in (folder, folder / "near-miss"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in (wav, wav.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(folder.glob(".*"))  # no temporary or probe files left behind


@pytest.mark.parametrize("threshold", [None, 0.99999])
def test_near_misses_are_peaks_that_did_not_fire(
    shipped_model_path: Path, word, tmp_path: Path, threshold: float | None
) -> None:
    """At the model's threshold the word fires (a detection clip, no near miss); at an impossible
    threshold each word is a near miss instead, one per word, and the word is in its clip."""
    played = _wav(tmp_path / "two.wav", _silence(1.0), word, _silence(2.0), word, _silence(1.0))
    folder = tmp_path / "clips"
    seen = []
    config = _config(shipped_model_path, ClipSettings(dir=folder, near_miss_threshold=0.5), threshold)
    assert run_listen(config, on_detection=seen.append, source=FileSource(played, realtime=False)) == 0
    detections, misses = _clips(folder), _clips(folder / "near-miss")
    if threshold is None:
        assert len(seen) == len(detections) == 2 and misses == []
        return
    assert seen == [] and detections == [] and len(misses) == 2
    for wav in misses:
        sidecar = json.loads(wav.with_suffix(".json").read_text())
        assert sidecar["kind"] == "near-miss" and 0.5 <= sidecar["score"] < threshold
        assert sidecar["near_miss_threshold"] == 0.5 and sidecar["detector"]["threshold"] == threshold
        assert len(detect_file(wav, Detector([shipped_model_path]))) == 1  # fires at the default


def _freeze(folder: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(folder)], check=True, capture_output=True)


def test_a_stuck_disk_gives_one_warning_and_listening_continues(
    shipped_model_path: Path, word, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        _freeze(probe, True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"chattr +i does not work here, so root could still write: {exc}")
    writable_as_root = True
    try:
        (probe / "x").touch()
    except OSError:
        writable_as_root = False
    _freeze(probe, False)
    if writable_as_root:
        pytest.skip("chattr +i did not stop root from writing here")

    played = _wav(
        tmp_path / "three.wav", _silence(0.5), word, _silence(2.0), word, _silence(2.0), word, _silence(1.0)
    )
    folder = tmp_path / "clips"
    seen = []

    def disk_trouble() -> None:
        deadline = time.monotonic() + 20
        while not _clips(folder) and time.monotonic() < deadline:
            time.sleep(0.02)
        _freeze(folder, True)  # the first clip is on disk: now the disk "sticks"
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)  # the second clip is cut 0.5 s after its detection and fails
        _freeze(folder, False)

    helper = threading.Thread(target=disk_trouble, daemon=True)
    helper.start()
    try:
        with caplog.at_level(logging.INFO, logger="wakeword"):
            code = run_listen(
                _config(shipped_model_path, ClipSettings(dir=folder)),
                on_detection=seen.append,
                source=FileSource(played, realtime=True),
            )
        helper.join(30)
    finally:
        _freeze(folder, False)
    assert code == 0
    assert len(seen) == 3  # detection never waited for the disk
    assert len(_clips(folder)) == 2  # the first and the third
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot save clips" in warnings[0], warnings
    assert any("saving clips to" in r.getMessage() and "again" in r.getMessage() for r in caplog.records)


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wakeword.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--save-clips", "{file}/clips"], "cannot write clips to"),
        (["--save-clips", "/proc/wakeword-clips"], "cannot write clips to"),
        (["--save-near-misses", "0.5"], "needs --save-clips DIR"),
        (["--save-clips", "{tmp}/c", "--save-near-misses", "1.5"], "--save-near-misses"),
    ],
)
def test_unusable_clip_options_are_one_error_line(
    loud_model_path: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    audio = _wav(tmp_path / "quiet.wav", _silence(0.5))
    args = [a.format(file=audio, tmp=tmp_path) for a in args]
    result = _cli("listen", "--model", str(loud_model_path), "--input", str(audio), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wakeword: error:") and message in lines[0], lines


# --------------------------------------------------------------------------- the parts


def _clip(stamp: str, seconds: float = 0.5) -> Clip:
    from datetime import UTC, datetime

    wall = datetime.strptime(f"2026-12-04 {stamp}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    samples = np.zeros(int(seconds * RATE), dtype=np.int16)
    return Clip("detection", "espresso", samples, {"score": 0.9}, wall)


def _times(folder: Path) -> list[str]:
    return [p.name[9:15] for p in _clips(folder)]


def test_store_cap_removes_the_oldest_first(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    store = ClipStore(folder, max_clips=3)
    store.prepare()
    for stamp in ("10:00:00", "10:00:01", "10:00:02", "10:00:03", "10:00:04"):
        store.save(_clip(stamp))
    assert _times(folder) == ["100002", "100003", "100004"] and store.removed == 2
    assert sorted(folder.glob("*.json")) == [p.with_suffix(".json") for p in _clips(folder)]
    # A new run counts what an earlier one left; the size cap applies too (about 16 KB per clip).
    again = ClipStore(folder, max_clips=100, max_bytes=40_000)
    again.prepare()
    assert again.count == 3
    again.save(_clip("10:00:05"))
    assert _times(folder) == ["100004", "100005"]


def test_audio_history_wraps_and_restarts_after_a_gap() -> None:
    history = AudioHistory(seconds=1.0)
    data = np.arange(40000, dtype=np.int64).astype(np.int16)
    for start in range(0, 40000, 1234):
        history.append(data[start : start + 1234], start)
    got, first = history.get(0, 41000)
    assert first == 40000 - 16000 and np.array_equal(got, data[first:40000])
    history.append(data[:100], 50000)  # audio was dropped: nothing from before the gap is kept
    got, first = history.get(0, 60000)
    assert first == 50000 and got.size == 100


def test_near_miss_tracker_one_per_peak_with_refractory() -> None:
    tracker = NearMissTracker(threshold=0.5, refractory_frames=10)
    scores = [0.1, 0.6, 0.8, 0.7, 0.2] + [0.1] * 3 + [0.6, 0.1] + [0.1] * 20 + [0.9, 0.95, 0.3]
    found = tracker.feed(0, scores, fired=set())
    assert found == [(2, 0.8), (31, 0.95)]  # the peak at frame 8 is within 10 frames of frame 2
    fired_run = NearMissTracker(threshold=0.5, refractory_frames=0)
    assert fired_run.feed(0, [0.6, 0.9, 0.99, 0.2], fired={2}) == []  # it fired: a detection, not a miss
    open_run = NearMissTracker(threshold=0.5, refractory_frames=0)
    assert open_run.feed(0, [0.2, 0.7], fired=set()) == [] and open_run.finish() == [(1, 0.7)]
    # T above the detector's threshold: a peak over T that dips under T and then fires is one fired run.
    above = NearMissTracker(threshold=0.9, refractory_frames=0, fire_threshold=0.5)
    assert above.feed(0, [0.95, 0.7, 0.8, 0.1], fired={2}) == []
    assert above.feed(4, [0.6, 0.92, 0.4], fired=set()) == [(5, 0.92)]


def test_existing_loose_directory_is_not_chmodded_but_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with caplog.at_level(logging.WARNING, logger="wakeword.clips"):
        ClipStore(folder).prepare()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert any("chmod 700" in r.getMessage() for r in caplog.records)
    shutil.rmtree(folder)
