"""HookRunner with real subprocesses: env and stdin arrive, timeouts kill, caps hold, no injection.

Waiting is done by polling for files a hook writes (with a generous deadline), never
by asserting how long something took.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from wakeword.detector import Detection
from wakeword.hooks import HookRunner, HookSettings, hook_environment

DETECTION = Detection(wake_word="espresso", score=0.97312, time_s=12.345, frame=1232)


def _wait_for(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def runners():
    """Runners created by a test are closed even when it fails (no stray processes)."""
    created: list[HookRunner] = []

    def make(*hooks: HookSettings) -> HookRunner:
        runner = HookRunner(list(hooks))
        created.append(runner)
        return runner

    yield make
    for runner in created:
        runner.close(timeout_s=5)


def test_environment_variables_arrive(tmp_path: Path, runners) -> None:
    out = tmp_path / "env.txt"
    script = (
        f'printf "%s\\n%s\\n%s\\n%s\\n" "$WAKEWORD_NAME" "$WAKEWORD_SCORE" "$WAKEWORD_TIME" '
        f'"$WAKEWORD_STREAM_TIME" > {out}.tmp && mv {out}.tmp {out}'
    )
    runner = runners(HookSettings(command=script))
    before = datetime.now().astimezone()
    runner.fire(DETECTION)
    assert _wait_for(out.exists)
    name, score, wall, stream = out.read_text().splitlines()
    assert (name, score, stream) == ("espresso", "0.973", "12.345")
    stamp = datetime.fromisoformat(wall)
    assert stamp.tzinfo is not None
    assert abs((stamp - before).total_seconds()) < 3600  # the wall clock now, not stream time


def test_systemd_variables_are_not_passed_to_hooks(
    tmp_path: Path, runners, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WAKEWORD_TEST_KEEP", "kept")
    out = tmp_path / "env.txt"
    runner = runners(
        HookSettings(command=f'echo "[$NOTIFY_SOCKET][$WATCHDOG_USEC][$WAKEWORD_TEST_KEEP]" > {out}')
    )
    runner.fire(DETECTION)
    assert _wait_for(lambda: out.exists() and out.read_text().endswith("\n"))
    assert out.read_text().strip() == "[][][kept]"


def test_json_event_arrives_on_stdin_with_argv_command(tmp_path: Path, runners) -> None:
    out = tmp_path / "event.json"
    copy = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read())"
    runner = runners(HookSettings(command=[sys.executable, "-c", copy]))
    runner.fire(DETECTION)
    assert _wait_for(lambda: out.exists() and out.read_text().endswith("\n"))
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "detection"
    assert event["wake_word"] == "espresso"
    assert event["score"] == pytest.approx(0.97312)
    assert event["stream_time_s"] == pytest.approx(12.345)
    assert event["frame"] == 1232
    assert datetime.fromisoformat(event["time"]).tzinfo is not None


def test_timed_out_hook_is_killed_and_does_not_delay_the_next_one(
    tmp_path: Path, runners, caplog: pytest.LogCaptureFixture
) -> None:
    slow_pid, child_pid, fast_out = tmp_path / "slow.pid", tmp_path / "child.pid", tmp_path / "fast.txt"
    script = (
        f'if [ "$WAKEWORD_NAME" = slow ]; then '
        f"sleep 300 & echo $! > {child_pid}; echo $$ > {slow_pid}; wait; "
        f'else echo "$WAKEWORD_NAME" > {fast_out}; fi'
    )
    runner = runners(HookSettings(command=script, timeout_s=4, max_concurrent=2))
    caplog.set_level(logging.WARNING, logger="wakeword.hooks")
    runner.fire(Detection("slow", 0.9, 1.0, 1))
    assert _wait_for(lambda: slow_pid.exists() and child_pid.exists() and child_pid.read_text().strip())
    pids = [int(slow_pid.read_text()), int(child_pid.read_text())]

    runner.fire(Detection("fast", 0.9, 2.0, 2))
    assert _wait_for(fast_out.exists)
    assert fast_out.read_text().strip() == "fast"
    # The fast hook finished while the slow one was still running: it was not queued behind it.
    assert all(_alive(pid) for pid in pids)
    assert "timed out" not in caplog.text

    assert _wait_for(lambda: not any(_alive(pid) for pid in pids))
    assert _wait_for(lambda: "timed out after 4.0 s" in caplog.text)
    timed_out = [r for r in caplog.records if "timed out" in r.getMessage()]
    assert len(timed_out) == 1 and "\n" not in timed_out[0].getMessage()
    assert _wait_for(lambda: runner.running() == 0)


def test_concurrency_cap_skips_runs_and_logs(
    tmp_path: Path, runners, caplog: pytest.LogCaptureFixture
) -> None:
    running, started, release = tmp_path / "running", tmp_path / "started", tmp_path / "release"
    running.mkdir()
    started.mkdir()
    script = (
        f"touch {running}/$$ {started}/$$; "
        f"n=$(ls {running} | wc -l); echo $n >> {tmp_path}/peak; "
        f"while [ ! -e {release} ]; do sleep 0.05; done; rm {running}/$$"
    )
    runner = runners(HookSettings(command=script, timeout_s=60, max_concurrent=2))
    caplog.set_level(logging.WARNING, logger="wakeword.hooks")
    for i in range(5):
        runner.fire(Detection("espresso", 0.9, float(i), i))
    assert _wait_for(lambda: len(list(started.iterdir())) == 2)
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3
    assert "max_concurrent=2" in skipped[0].getMessage()
    assert runner.running() == 2

    release.touch()
    assert _wait_for(lambda: runner.running() == 0)
    assert len(list(started.iterdir())) == 2
    assert max(int(x) for x in (tmp_path / "peak").read_text().split()) <= 2
    # Once the runs finish, a new detection runs the hook again.
    runner.fire(Detection("espresso", 0.9, 9.0, 9))
    assert _wait_for(lambda: len(list(started.iterdir())) == 3)


@pytest.mark.parametrize(
    "template",
    [
        "$(touch {marker})",
        "`touch {marker}`",
        "x; touch {marker}",
        "x && touch {marker} #",
        "'; touch {marker}; '",
    ],
)
def test_wake_word_with_shell_metacharacters_cannot_inject(tmp_path: Path, runners, template: str) -> None:
    marker = tmp_path / "pwned"
    out = tmp_path / "name.txt"
    name = template.format(marker=marker)
    runner = runners(HookSettings(command=f'echo "$WAKEWORD_NAME" > {out}; echo $WAKEWORD_NAME >> {out}'))
    runner.fire(Detection(name, 0.5, 1.0, 1))
    assert _wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2)
    runner.close(timeout_s=10)
    assert out.read_text().splitlines()[0] == name  # delivered verbatim
    assert not marker.exists()


def test_argv_hook_gets_metacharacters_verbatim(tmp_path: Path, runners) -> None:
    marker = tmp_path / "pwned"
    out = tmp_path / "env.json"
    dump = (
        "import os, json, pathlib; "
        f"pathlib.Path({str(out)!r}).write_text(json.dumps({{k: v for k, v in os.environ.items() "
        "if k.startswith('WAKEWORD_')}))"
    )
    runner = runners(HookSettings(command=[sys.executable, "-c", dump]))
    name = f"$(touch {marker}); `touch {marker}`"
    runner.fire(Detection(name, 0.5, 1.0, 1))
    assert _wait_for(out.exists)
    runner.close(timeout_s=10)
    assert json.loads(out.read_text())["WAKEWORD_NAME"] == name
    assert not marker.exists()


def test_failing_hook_is_logged_with_stderr_tail_and_runner_keeps_working(
    tmp_path: Path, runners, caplog: pytest.LogCaptureFixture
) -> None:
    ok = tmp_path / "ok"
    script = (
        f'if [ "$WAKEWORD_NAME" = bad ]; then head -c 100000 /dev/zero | tr "\\0" a >&2; '
        f"echo the-last-words >&2; exit 3; else touch {ok}; fi"
    )
    runner = runners(HookSettings(command=script))
    caplog.set_level(logging.WARNING, logger="wakeword.hooks")
    runner.fire(Detection("bad", 0.9, 1.0, 1))
    assert _wait_for(lambda: any("exit status 3" in r.getMessage() for r in caplog.records))
    (record,) = [r for r in caplog.records if "exit status 3" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message
    assert message.endswith("the-last-words")
    assert len(message) < 700  # 100 kB of stderr, only a bounded tail is kept
    runner.fire(Detection("good", 0.9, 2.0, 2))
    assert _wait_for(ok.exists)


def test_missing_executable_is_logged_not_raised(runners, caplog: pytest.LogCaptureFixture) -> None:
    runner = runners(HookSettings(command=["/nonexistent/hook-binary"]))
    caplog.set_level(logging.WARNING, logger="wakeword.hooks")
    runner.fire(DETECTION)
    assert _wait_for(lambda: "could not run" in caplog.text)
    assert _wait_for(lambda: runner.running() == 0)


def test_hook_that_ignores_stdin_and_floods_stdout_does_not_block(tmp_path: Path, runners) -> None:
    done = tmp_path / "done"
    runner = runners(HookSettings(command=f"head -c 5000000 /dev/zero; touch {done}"))
    runner.fire(DETECTION)
    assert _wait_for(done.exists)
    assert _wait_for(lambda: runner.running() == 0)


def test_close_waits_for_hooks_in_flight(tmp_path: Path) -> None:
    out = tmp_path / "late"
    runner = HookRunner([HookSettings(command=f"sleep 0.5; touch {out}", timeout_s=30)])
    runner.fire(DETECTION)
    runner.close()
    assert out.exists()
    assert runner.running() == 0


def test_close_kills_hooks_still_running_after_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    runner = HookRunner([HookSettings(command=f"echo $$ > {pid_file}; exec sleep 300", timeout_s=300)])
    runner.fire(DETECTION)
    assert _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
    pid = int(pid_file.read_text())
    runner.close(timeout_s=0.2)
    assert _wait_for(lambda: not _alive(pid))


def test_fire_after_close_does_not_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    runner = HookRunner([HookSettings(command=f"touch {out}")])
    runner.close()
    caplog.set_level(logging.WARNING, logger="wakeword.hooks")
    runner.fire(DETECTION)
    assert "closed" in caplog.text
    assert runner.running() == 0
    assert not out.exists()


def test_several_hooks_each_run(tmp_path: Path, runners) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    runner = runners(HookSettings(command=f"touch {a}"), HookSettings(command=["touch", str(b)]))
    runner.fire(DETECTION)
    assert _wait_for(lambda: a.exists() and b.exists())


def test_no_hooks_is_a_no_op() -> None:
    runner = HookRunner([])
    runner.fire(DETECTION)
    runner.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"command": ""},
        {"command": []},
        {"command": ["ls", ""]},
        {"command": "x", "timeout_s": 0},
        {"command": "x", "max_concurrent": 0},
    ],
)
def test_invalid_hook_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        HookSettings(**kwargs)


def test_list_command_is_stored_as_a_tuple_and_settings_are_hashable() -> None:
    hook = HookSettings(command=["notify-send", "hi"])
    assert hook.command == ("notify-send", "hi")
    assert hash(hook) == hash(HookSettings(command=("notify-send", "hi")))


def test_hook_environment_formats() -> None:
    env = hook_environment(Detection("w", 0.5, 1.0, 3), datetime.fromisoformat("2026-01-02T03:04:05+01:00"))
    assert env == {
        "WAKEWORD_NAME": "w",
        "WAKEWORD_SCORE": "0.500",
        "WAKEWORD_TIME": "2026-01-02T03:04:05.000+01:00",
        "WAKEWORD_STREAM_TIME": "1.000",
    }
    assert os.environ.get("WAKEWORD_NAME") is None  # the parent's environment is untouched
