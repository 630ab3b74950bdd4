"""``wakeword``: the command line. The only module that prints for people.

Every error a person can act on is a :class:`~wakeword.errors.WakewordError`,
printed as one ``wakeword: error: ...`` line with the error's exit code; a
traceback appears only for bugs, and only with ``-v``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wakeword import __version__
from wakeword.errors import AudioError, ConfigError, WakewordError

if TYPE_CHECKING:
    from wakeword.config import Config
    from wakeword.detector import Detection

log = logging.getLogger("wakeword.cli")

EXIT_CODES = """\
exit codes:
  0    success (listen: stopped by SIGTERM/SIGINT, or the input ended)
  1    other error (e.g. an optional package missing), or a bug (run with -v for the traceback)
  2    bad command line or config (ConfigError)
  3    model missing, corrupt or incompatible (ModelError)
  4    audio problem: unreadable audio file, no input device (AudioError)
  130  interrupted (Ctrl-C outside `listen`)
detect exits with the code of the first file that failed, after trying every file.
"""


# --------------------------------------------------------------------------- parser


def _common(verbose_defaults: bool) -> argparse.ArgumentParser:
    """-v/-q, accepted before or after the subcommand."""
    default = argparse.SUPPRESS if not verbose_defaults else None
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default if default is argparse.SUPPRESS else 0,
        help="debug logging (and tracebacks for unexpected errors)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default if default is argparse.SUPPRESS else False,
        help="only warnings and errors on stderr",
    )
    return parent


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML config (default: $XDG_CONFIG_HOME/wakeword/config.yaml, /etc/wakeword/config.yaml, "
        "else built-in defaults)",
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="PATH",
        help="ONNX model to run instead of the config's (repeatable: one detector each)",
    )
    parser.add_argument(
        "--threshold", type=float, metavar="T", help="detection threshold for every model, in (0, 1)"
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common(verbose_defaults=False)
    parser = argparse.ArgumentParser(
        prog="wakeword",
        description="Real-time wake-word detection: say the word, run your hook.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(verbose_defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"wakeword {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listen = sub.add_parser(
        "listen",
        parents=[common],
        help="listen to a microphone (or a file, or stdin) and report detections",
        description="Listen and print one line per detection on stdout; run hooks and publish to MQTT as "
        "configured. SIGTERM/SIGINT stop cleanly; SIGHUP reloads the config and models without "
        "dropping audio.",
        epilog=EXIT_CODES
        + "\nexamples:\n  wakeword listen\n  wakeword listen --device 2 --hook 'notify-send espresso'\n"
        "  arecord -q -f S16_LE -r 16000 -c 1 | wakeword listen --input -\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_options(listen)
    listen.add_argument("--device", metavar="NAME|INDEX", help="input device (see `wakeword devices`)")
    listen.add_argument(
        "--input",
        metavar="FILE|-",
        help="read an audio file (played at real-time pace) or, with '-', raw s16le 16 kHz mono PCM on stdin",
    )
    listen.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="with --input FILE: process as fast as possible instead of at real-time pace",
    )
    listen.add_argument(
        "--hook",
        action="append",
        metavar="CMD",
        help="shell command to run on each detection (added to the config's hooks; repeatable)",
    )
    listen.add_argument("--json", action="store_true", help="print each detection as one JSON object")
    clips = listen.add_argument_group("saved clips (off by default: this is audio of your home)")
    clips.add_argument(
        "--save-clips",
        metavar="DIR",
        help="save each detection's audio (1.5 s before to 0.5 s after, 16 kHz WAV) and JSON sidecar in DIR",
    )
    clips.add_argument(
        "--save-near-misses",
        type=float,
        metavar="T",
        help="also save score peaks >= T that did not fire, into DIR/near-miss/",
    )
    clips.add_argument("--max-clips", type=int, metavar="N", help="keep at most N clips (default 1000)")
    clips.add_argument(
        "--max-megabytes", type=float, metavar="MB", help="keep at most MB of clips (default 100)"
    )
    listen.add_argument(
        "--dump-audio",
        metavar="FILE",
        help="debugging: write everything the detector hears to FILE (16 kHz WAV, zeros where audio was "
        "dropped, sample n = stream time n/16000 s) and FILE.restarts (where the detector restarted after "
        "dropped audio or a reload); `wakeword detect FILE` replays it with those restarts",
    )
    listen.add_argument(
        "--meter",
        action="store_true",
        help="on a terminal, show the input level and each model's score against its threshold, "
        "about 10 times a second (nothing extra without a terminal)",
    )
    listen.set_defaults(func=cmd_listen)

    detect = sub.add_parser(
        "detect",
        parents=[common],
        help="run detection over audio files, as fast as the CPU allows",
        description="Run audio files through the same detector as `listen` and print each detection. "
        "A file that fails prints one error line and the others continue; the exit code is "
        "non-zero if any file failed.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG, ...)")
    _model_options(detect)
    detect.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per detection per line: {"file", "time", "score", "wake_word", "frame"}',
    )
    detect.set_defaults(func=cmd_detect)

    enroll = sub.add_parser(
        "enroll",
        parents=[common],
        help="record yourself saying the wake word, see how the model scores it, get a threshold",
        description="Prompt N times to say the wake word, record each take from the microphone (or take "
        "the first N utterances of --input), score each with the model and print a table and a threshold "
        "recommendation. Takes are saved as WAV + JSON (the --save-clips layout) for later training.",
        epilog=EXIT_CODES
        + "\nexamples:\n  wakeword enroll\n  wakeword enroll --count 5 --out ~/espresso-takes\n"
        "  wakeword enroll --input my-takes.wav\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_options(enroll)
    enroll.add_argument("--count", type=int, default=8, metavar="N", help="how many takes (default 8)")
    enroll.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to save the takes (default $XDG_DATA_HOME/wakeword/enroll/WAKE_WORD, "
        "~/.local/share/wakeword/enroll/WAKE_WORD)",
    )
    enroll.add_argument(
        "--input",
        metavar="FILE|-",
        help="no prompts: take the first N utterances of an audio file, or of raw s16le 16 kHz mono on stdin",
    )
    enroll.add_argument("--device", metavar="NAME|INDEX", help="input device (see `wakeword devices`)")
    enroll.set_defaults(func=cmd_enroll)

    devices = sub.add_parser(
        "devices",
        parents=[common],
        help="list input devices and the sample rates they accept",
        description="List capture devices: index, name, input channels, default sample rate, and which "
        "of 16000/44100/48000 Hz each accepts. Use the index or name with `listen --device`.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    devices.set_defaults(func=cmd_devices)

    from wakeword.wyoming import add_wyoming_parser

    wyoming = add_wyoming_parser(sub, parents=[common])
    wyoming.formatter_class = argparse.RawDescriptionHelpFormatter
    wyoming.epilog = EXIT_CODES
    return parser


# --------------------------------------------------------------------------- helpers


#: Long-running commands: their loop logs through a queue, so a stderr nobody reads cannot stall it.
DAEMONS = ("listen", "wyoming")


def _setup_logging(args: argparse.Namespace, default: int) -> None:
    from wakeword.service import setup_logging

    if args.verbose:
        level = logging.DEBUG
    elif args.quiet:
        level = max(default, logging.WARNING)
    else:
        level = default
    setup_logging(level, nonblocking=args.command in DAEMONS)


def _load_config(args: argparse.Namespace) -> Config:
    from wakeword.config import load_config, with_overrides

    config = load_config(args.config)
    return with_overrides(
        config,
        models=args.model,
        threshold=args.threshold,
        device=getattr(args, "device", None),
        input=getattr(args, "input", None),
        save_clips=getattr(args, "save_clips", None),
        near_misses=getattr(args, "save_near_misses", None),
        max_clips=getattr(args, "max_clips", None),
        max_megabytes=getattr(args, "max_megabytes", None),
    )


def _config_level(config: Config) -> int:
    return logging.getLevelName(config.log_level) if isinstance(config.log_level, str) else logging.INFO


def _print_line(text: str) -> None:
    print(text, flush=True)


def format_detection(detection: Detection, *, file: str | None = None, as_json: bool = False) -> str:
    """One line for a detection: JSON, or ``[FILE: ]TIME s  WAKE_WORD  score S``."""
    if as_json:
        record: dict[str, object] = {}
        if file is not None:
            record["file"] = file
        record.update(
            time=round(detection.time_s, 3),
            score=round(float(detection.score), 4),
            wake_word=detection.wake_word,
            frame=detection.frame,
        )
        if file is None:
            record["wall_time"] = datetime.now().astimezone().isoformat(timespec="milliseconds")
        return json.dumps(record)
    where = f"{file}: " if file is not None else f"{datetime.now().strftime('%H:%M:%S')} "
    return f"{where}{detection.wake_word} at {detection.time_s:.2f} s (score {detection.score:.3f})"


# --------------------------------------------------------------------------- commands


def cmd_listen(args: argparse.Namespace) -> int:
    from wakeword.hooks import HookSettings
    from wakeword.listen import run_listen, source_for
    from wakeword.output import StdoutSink
    from wakeword.service import SystemdLifecycle

    def configure() -> Config:
        config = _load_config(args)
        if args.hook:
            try:
                extra = tuple(HookSettings(command=cmd) for cmd in args.hook)
            except ValueError as exc:
                raise ConfigError(f"--hook: {exc}") from exc
            config = replace(config, hooks=(*config.hooks, *extra))
        return config

    config = configure()
    if not args.verbose and not args.quiet:
        logging.getLogger().setLevel(_config_level(config))  # main() set up the handler
    if not args.realtime and config.audio.input in (None, "-"):
        log.warning("--no-realtime only applies to --input FILE; ignoring it")
    source = source_for(config, realtime=args.realtime)
    stop = threading.Event()
    stdout = StdoutSink(on_broken=stop.set)  # a closed stdout ends `listen` (as `| head` expects)
    meter = None
    if args.meter:
        from wakeword.meter import open_meter

        meter = open_meter([sys.stdout, sys.stderr])  # None without a terminal: nothing extra printed
    taps: list = [meter] if meter is not None else []
    if args.dump_audio:
        from wakeword.dump import AudioDump

        taps.append(AudioDump(args.dump_audio))
    try:
        code = run_listen(
            config,
            lifecycle=SystemdLifecycle(status_interval_s=config.service.status_interval_s),
            stop_event=stop,
            on_detection=lambda d: stdout.write(format_detection(d, as_json=args.json)),
            reload_config=configure,
            source=source,
            taps=taps,
        )
    finally:
        if meter is not None:
            meter.close()  # gives the terminal its scroll region back, even after an error
        stdout.close()
    if stdout.broken:
        raise BrokenPipeError("stdout was closed")  # main() makes it a quiet exit 0, as before
    return code


def cmd_detect(args: argparse.Namespace) -> int:
    from wakeword.audio import open_audio_file
    from wakeword.dump import read_restarts
    from wakeword.engine import Detector, detect_chunks

    detector = Detector.from_config(_load_config(args))
    failed: WakewordError | None = None
    for name in args.files:
        try:  # a --dump-audio recording replays with the live detector's restarts noted beside it
            detections = detect_chunks(open_audio_file(name), detector, read_restarts(name))
        except WakewordError as exc:
            _error(exc)
            failed = failed or exc
            continue
        for detection in detections:
            _print_line(format_detection(detection, file=name, as_json=args.json))
        log.debug("%s: %d detection(s)", name, len(detections))
    if failed is not None:
        return failed.exit_code
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from wakeword.audio import MicrophoneSource
    from wakeword.config import load_config, with_overrides
    from wakeword.engine import Detector
    from wakeword.enroll import run_enroll

    if not 1 <= args.count <= 100:
        raise ConfigError(f"--count: expected a whole number between 1 and 100, got {args.count}")
    # --input is enroll's own (not the config's audio.input, which `listen` reads forever).
    config = with_overrides(load_config(args.config), models=args.model, threshold=args.threshold)
    if len(config.models) != 1:
        raise ConfigError("enroll works on one model at a time; choose it with --model PATH")
    detector = Detector.from_config(config)
    device = args.device if args.device is not None else config.audio.device
    return run_enroll(
        detector,
        count=args.count,
        out=args.out,
        input_spec=args.input,
        source_factory=lambda: MicrophoneSource(device, block_s=0.05),
        stdout=sys.stdout,
        prompt=sys.stderr,
    )


def cmd_devices(args: argparse.Namespace) -> int:
    from wakeword.audio import NO_INPUT_DEVICE, list_input_devices

    devices = list_input_devices()
    if not devices:
        raise AudioError(NO_INPUT_DEVICE)
    rows = [("", "index", "name", "channels", "default rate", "accepts (of 16000/44100/48000 Hz)")]
    for d in devices:
        rows.append(
            (
                "*" if d.is_default else "",
                str(d.index),
                d.name,
                str(d.channels),
                f"{d.default_samplerate:.0f} Hz",
                ", ".join(str(r) for r in d.supported_rates) or "none",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        _print_line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    _print_line("(* = default input; use the index or name with `wakeword listen --device`)")
    return 0


# --------------------------------------------------------------------------- entry point


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _error(exc: BaseException) -> None:
    print(f"wakeword: error: {_one_line(exc)}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see EXIT_CODES)."""
    from wakeword.service import finish_logging

    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    verbose = bool(args.verbose)
    try:
        _setup_logging(args, logging.INFO if args.command in DAEMONS else logging.WARNING)
        try:
            return int(args.func(args) or 0)
        finally:  # queued log lines first, then any error line (waits at most ~1.5 s for stderr)
            finish_logging()
    except WakewordError as exc:
        if verbose:
            traceback.print_exc()
        _error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (e.g. `| head`): not an error worth a message
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        print(
            f"wakeword: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(this is a bug; run with -v for the traceback)",
            file=sys.stderr,
            flush=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
