"""``wakeword enroll``: scripted through --input (a file or stdin of N takes), and prompted from the
virtual microphone; the shipped model scores held-out synthetic voices (tests/speech.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.speech import HELD_OUT_VOICE, RATE, espeak_missing, synthesize
from tests.virtual_mic import VirtualMic, make_virtual_mic_fixture
from wakeword.audio import MicrophoneSource
from wakeword.engine import Detector
from wakeword.enroll import Take, cut_takes, find_utterances, recommend, record_takes, score_takes
from wakeword.metadata import DetectorSettings

virtual_mic = make_virtual_mic_fixture(scope="module")
VOICES = (HELD_OUT_VOICE, f"{HELD_OUT_VOICE}+f3", f"{HELD_OUT_VOICE}+m3")


@pytest.fixture(scope="module")
def takes_audio() -> np.ndarray:
    """Three held-out takes of "espresso", 1 s apart, after half a second of quiet."""
    reason = espeak_missing()
    if reason:
        pytest.skip(reason)
    parts = [np.zeros(RATE // 2, dtype=np.float32)]
    for i, voice in enumerate(VOICES):
        speech = synthesize("espresso", voice=voice, speed=140 + 10 * i)
        parts += [(0.3 * speech / np.abs(speech).max()).astype(np.float32), np.zeros(RATE, dtype=np.float32)]
    audio = np.concatenate(parts)
    audio += np.random.default_rng(0).normal(0, 1e-4, audio.size).astype(np.float32)  # a mic's floor
    return audio


def _cli(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wakeword.cli", "enroll", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env=env,
    )


def _rows(stdout: bytes) -> list[list[str]]:
    lines = stdout.decode().splitlines()
    assert lines[0].startswith("take  peak score")
    return [line.split() for line in lines[1 : lines.index("")]]


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_scripted_input_of_n_takes_gives_n_rows_and_saved_clips(
    shipped_model_path: Path, takes_audio: np.ndarray, tmp_path: Path, via: str
) -> None:
    out = tmp_path / "takes"
    if via == "file":
        wav = tmp_path / "takes.wav"
        sf.write(str(wav), takes_audio, RATE, subtype="PCM_16")
        result = _cli(
            "--input", str(wav), "--count", "3", "--out", str(out), "--model", str(shipped_model_path)
        )
    else:
        pcm = np.clip(np.rint(takes_audio * 32768), -32768, 32767).astype("<i2").tobytes()
        result = _cli(
            "--input", "-", "--count", "3", "--out", str(out), "--model", str(shipped_model_path), stdin=pcm
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""  # no prompts, no warnings when scripted
    rows = _rows(result.stdout)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert all(r[2] == "yes" and float(r[1]) >= 0.9 for r in rows), rows
    assert "Recommended threshold" in result.stdout.decode()
    wavs = sorted(out.glob("*.wav"))
    assert [w.name for w in wavs] == sorted(r[3] for r in rows)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for wav in wavs:
        assert stat.S_IMODE(wav.stat().st_mode) == 0o600
        sidecar = json.loads(wav.with_suffix(".json").read_text())
        assert sidecar["kind"] == "enrollment" and sidecar["wake_word"] == "espresso"
        assert 0 < sidecar["keyword_start_s"] < sidecar["keyword_end_s"] <= sidecar["duration_s"]
        assert len(sidecar["model"]["sha256"]) == 64


def test_fewer_takes_than_asked_warns_once_and_scores_those(
    shipped_model_path: Path, takes_audio: np.ndarray, tmp_path: Path
) -> None:
    wav = tmp_path / "takes.wav"
    sf.write(str(wav), takes_audio, RATE, subtype="PCM_16")
    result = _cli(
        "--input", str(wav), "--count", "5", "--out", str(tmp_path / "o"), "--model", str(shipped_model_path)
    )
    assert result.returncode == 0
    assert len(_rows(result.stdout)) == 3
    errors = result.stderr.decode().strip().splitlines()
    assert len(errors) == 1 and "found only 3 of 5" in errors[0]


@pytest.mark.parametrize(
    "stdin, args, code, message",
    [
        (b"", ["--input", "-"], 4, "stdin: no audio"),
        (np.zeros(32000, dtype="<i2").tobytes(), ["--input", "-"], 4, "no utterance found"),
        # A 20 ms click is not a word: "zero-length" utterances are no takes at all.
        (
            np.r_[np.zeros(8000), np.full(320, 9000), np.zeros(8000)].astype("<i2").tobytes(),
            ["--input", "-"],
            4,
            "no utterance",
        ),
        (b"", ["--input", "-", "--count", "0"], 2, "--count"),
        (b"", ["--input", "-", "--out", "/proc/wakeword-takes"], 2, "cannot write takes"),
    ],
)
def test_bad_input_is_one_error_line(
    loud_model_path: Path, tmp_path: Path, stdin: bytes, args: list[str], code: int, message: str
) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "o")]
    result = _cli(*args, "--model", str(loud_model_path), stdin=stdin)
    assert result.returncode == code, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wakeword: error:") and message in lines[0], lines


def test_no_microphone_is_one_error_line(loud_model_path: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PULSE_SERVER",)}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)  # no sound server to find
    result = _cli("--count", "1", "--out", str(tmp_path / "o"), "--model", str(loud_model_path), env=env)
    assert result.returncode == 4
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "no input device" in lines[0], lines


def test_vad_finds_each_word_and_cuts_with_context(takes_audio: np.ndarray) -> None:
    spans = find_utterances(takes_audio)
    assert len(spans) == 3
    takes = cut_takes(takes_audio, 2)
    assert [t.index for t in takes] == [1, 2]
    assert takes[0].speech_start_s == pytest.approx(0.5, abs=0.03)  # all the quiet before it, up to 1 s
    assert takes[1].speech_start_s == pytest.approx(0.5, abs=0.03)  # half the gap: not past the neighbour


def _take(level: float, detected: bool) -> Take:
    return Take(1, np.zeros(10, np.int16), 0.0, 0.1, 0.5, peak=level, fire_level=level, detected=detected)


def test_recommendation_below_the_default_says_what_it_costs(shipped_model_path: Path) -> None:
    settings = DetectorSettings(threshold=0.9, patience_frames=10)
    lines = " ".join(recommend([_take(0.99, True), _take(0.6, False)], settings, 0.9, shipped_model_path))
    assert "1 of 2 takes fire" in lines
    assert "below the model's default 0.9" in lines
    assert "the model card measures" in lines and "false accepts/h" in lines  # figures from the card
    assert "at that threshold, against" in lines and "at the default" in lines
    assert "Recommended threshold" not in lines  # never recommended silently
    high = " ".join(recommend([_take(0.999, True)] * 3, settings, 0.9, shipped_model_path))
    assert "Recommended threshold: 0.99" in high and "can only go down" in high
    lost = " ".join(recommend([_take(0.01, False)], settings, 0.9, shipped_model_path))
    assert "re-record" in lost and "No take scored high enough" in lost


def test_prompted_takes_from_the_virtual_microphone(
    virtual_mic: VirtualMic, shipped_model_path: Path, takes_audio: np.ndarray, tmp_path: Path
) -> None:
    """One prompt; the word keeps coming from the 'room', and the take cuts out the loudest word."""
    loop = tmp_path / "room.wav"
    sf.write(str(loop), np.tile(takes_audio, 3), RATE, subtype="PCM_16")
    prompts: list[str] = []
    source = MicrophoneSource("pulse")
    with source:
        assert source.first_callback.wait(10.0)
        player = virtual_mic.play_async(loop)
        try:
            takes = record_takes(source, 1, "espresso", prompts.append, pause=lambda s: None)
        finally:
            player.kill()
            player.wait()
    text = "".join(prompts)
    assert text.startswith("[1/1] 3... 2... say espresso now")
    scored = score_takes(takes, Detector([shipped_model_path]))
    assert len(scored) == 1 and all(t.detected for t in scored), [(t.peak, t.fire_level) for t in scored]


def test_a_silent_room_is_one_clear_error(virtual_mic: VirtualMic) -> None:
    """Nothing played: the try hears nothing, and the command ends with one AudioError line."""
    from wakeword.errors import AudioError

    with MicrophoneSource("pulse") as source, pytest.raises(AudioError, match="heard no speech") as info:
        assert source.first_callback.wait(10.0)
        record_takes(source, 1, "espresso", lambda text: None, tries=1, pause=lambda s: None)
    assert "\n" not in str(info.value)
