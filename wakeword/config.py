"""The YAML config -> frozen, validated dataclasses. The only place that knows key names and defaults.

Search order (first found wins): an explicit path (an error if it is missing),
``$XDG_CONFIG_HOME/wakeword/config.yaml`` (``~/.config`` when unset),
``/etc/wakeword/config.yaml``, else built-in defaults that run the shipped
espresso model. Every problem is one :class:`ConfigError` line naming the file
and the dotted key, e.g.
``config.yaml: models[0].threshold: expected a number between 0 and 1, got 'high'``,
so a typo is reported at start-up (or on reload) instead of being ignored.

Example::

    models:
      - path: models/espresso.onnx     # relative paths are relative to this file
        threshold: 0.6                 # optional: each overrides the model's default
    audio: {device: null, input: null, chunk_ms: 20, buffer_s: 10,
            save_clips: {dir: /var/lib/wakeword/clips, near_misses: 0.5, max_clips: 1000, max_megabytes: 100}}
    hooks:
      - command: ["/usr/local/bin/on-wake"]   # or a string, run with /bin/sh -c
        timeout_s: 10
        max_concurrent: 2
    log_level: INFO
    mqtt: {host: broker.local, port: 1883, tls: {ca_file: /etc/ssl/ca.pem}}
    service: {status_interval_s: 5}
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from wakeword.errors import ConfigError
from wakeword.hooks import HookSettings
from wakeword.metadata import MAX_STATE_RESET_S, MIN_STATE_RESET_S, DetectorSettings
from wakeword.model import default_model_path

#: System-wide config file (the systemd service reads this one).
SYSTEM_CONFIG_PATH = Path("/etc/wakeword/config.yaml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
BUILTIN_SOURCE = "built-in defaults"
COMMAND_LINE_SOURCE = "command line"


# --- the dataclasses -------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """One model to run; each ``None`` keeps the model's own default for that setting."""

    path: Path
    threshold: float | None = None
    smoothing_frames: int | None = None
    patience_frames: int | None = None
    refractory_s: float | None = None
    state_reset_s: float | None = None
    state_warm_s: float | None = None

    def detector_settings(self, defaults: DetectorSettings) -> DetectorSettings:
        """The model's defaults with this entry's keys laid over them."""
        overrides = {name: value for name in _MODEL_KEYS[1:] if (value := getattr(self, name)) is not None}
        try:
            return replace(defaults, **overrides)
        except ValueError as exc:  # e.g. state_warm_s over half of the model's state_reset_s
            raise ConfigError(f"models entry {self.path}: {exc}") from None


@dataclass(frozen=True)
class ClipSettings:
    """Saved audio of detections (and near misses): off unless configured, since it is audio of a home."""

    dir: Path
    near_miss_threshold: float | None = None  # also save non-firing score peaks at or above this
    max_clips: int = 1000  # oldest removed first beyond either cap
    max_megabytes: float = 100.0


@dataclass(frozen=True)
class AudioSettings:
    device: str | int | None = None  # sounddevice name (substring) or index; None = system default
    input: str | None = None  # audio file to read instead of a microphone, "-" = raw s16le on stdin
    chunk_ms: int = 20  # capture block size
    buffer_s: float = 10.0  # ring buffer between capture and processing
    save_clips: ClipSettings | None = None  # None = no clips saved

    @property
    def block_s(self) -> float:
        return self.chunk_ms / 1000.0


@dataclass(frozen=True)
class MqttSettings:
    """Broker connection. In YAML, TLS is the nested ``tls:`` mapping; here it is flattened."""

    host: str
    port: int = 1883
    topic_prefix: str | None = None  # None = wakeword/<hostname>
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # from the file, or read from password_env
    password_env: str | None = None
    tls: bool = False
    tls_ca_certs: str | None = None
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_insecure: bool = False
    qos: int = 1  # at-least-once: a message in flight when the link drops is resent
    client_id: str | None = None
    queue_size: int = 100  # detections kept while the broker is away
    keepalive_s: int = 60


@dataclass(frozen=True)
class ServiceSettings:
    status_interval_s: float = 5.0  # how often systemd STATUS= is refreshed (watchdog comes from systemd)


@dataclass(frozen=True)
class Config:
    models: tuple[ModelEntry, ...]
    audio: AudioSettings = field(default_factory=AudioSettings)
    hooks: tuple[HookSettings, ...] = ()
    log_level: str = "INFO"
    mqtt: MqttSettings | None = None
    service: ServiceSettings = field(default_factory=ServiceSettings)
    source: Path | None = None  # the file this came from; None for built-in defaults


def default_config() -> Config:
    """Built-in defaults: the shipped espresso model, default microphone, no hooks."""
    return Config(models=(ModelEntry(default_model_path()),))


# --- validation helpers ----------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """Validates values, producing errors that name the source and the dotted key."""

    def __init__(self, source: str, base_dir: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}")

    def mapping(self, value: Any, key: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping of keys to values, got {_show(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.error(key, f"keys must be strings, got {_show(name)}")
            if name not in allowed:
                raise self.error(_join(key, name), f"unknown key (expected one of: {', '.join(allowed)})")
        for name in required:
            if value.get(name) is None:
                raise self.error(_join(key, name), "required key is missing")
        return dict(value)

    def number(self, value: Any, key: str, low: float, high: float, *, open_low: bool = False) -> float:
        """A finite number in [low, high] (or (low, high] when ``open_low``)."""
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (low < value if open_low else low <= value) and value <= high
        if not ok:
            raise self.error(
                key, f"expected a number between {_num(low)} and {_num(high)}, got {_show(value)}"
            )
        return float(value)

    def fraction(self, value: Any, key: str) -> float:
        """Strictly between 0 and 1 (a threshold)."""
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0
        if not ok:
            raise self.error(key, f"expected a number between 0 and 1, got {_show(value)}")
        return float(value)

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"expected a whole number between {low} and {high}, got {_show(value)}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_show(value)}")
        return value

    def string(self, value: Any, key: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {_show(value)}")
        return value

    def path(self, value: Any, key: str, *, optional: bool = False) -> Path | None:
        text = self.string(value, key, optional=optional)
        if text is None:
            return None
        if "\0" in text:
            raise self.error(key, "path contains a NUL byte")
        try:
            path = Path(text).expanduser()
        except RuntimeError as exc:  # "~user/..." for a user that does not exist
            raise self.error(key, f"cannot expand {_show(text)}: {exc}") from exc
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def sequence(self, value: Any, key: str) -> list:
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_show(value)}")
        return value


def _num(value: float) -> str:
    return f"{value:g}"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _optional(data: Mapping, name: str, parse: Callable[[Any], Any], default: Any = None) -> Any:
    """Parse ``data[name]`` unless it is absent or null."""
    value = data.get(name)
    return default if value is None else parse(value)


# --- sections --------------------------------------------------------------------------------

_MODEL_KEYS = (
    "path",
    "threshold",
    "smoothing_frames",
    "patience_frames",
    "refractory_s",
    "state_reset_s",
    "state_warm_s",
)
_AUDIO_KEYS = ("device", "input", "chunk_ms", "buffer_s", "save_clips")
_CLIP_KEYS = ("dir", "near_misses", "max_clips", "max_megabytes")
_HOOK_KEYS = ("command", "timeout_s", "max_concurrent")
_TLS_KEYS = ("enabled", "ca_file", "certfile", "keyfile", "insecure")
_MQTT_KEYS = (
    "host",
    "port",
    "topic_prefix",
    "username",
    "password",
    "password_env",
    "tls",
    "qos",
    "client_id",
    "queue_size",
    "keepalive_s",
)
_SERVICE_KEYS = ("status_interval_s",)
_TOP_KEYS = ("models", "audio", "hooks", "log_level", "mqtt", "service")


def _model_entry(c: _Checker, value: Any, key: str) -> ModelEntry:
    if isinstance(value, str):  # shorthand: just the path
        value = {"path": value}
    data = c.mapping(value, key, _MODEL_KEYS, required=("path",))
    return ModelEntry(
        path=c.path(data["path"], f"{key}.path"),
        threshold=_optional(data, "threshold", lambda v: c.fraction(v, f"{key}.threshold")),
        smoothing_frames=_optional(
            data, "smoothing_frames", lambda v: c.integer(v, f"{key}.smoothing_frames", 1, 1000)
        ),
        patience_frames=_optional(
            data, "patience_frames", lambda v: c.integer(v, f"{key}.patience_frames", 1, 1000)
        ),
        refractory_s=_optional(data, "refractory_s", lambda v: c.number(v, f"{key}.refractory_s", 0, 3600)),
        state_reset_s=_optional(
            data, "state_reset_s", lambda v: _state_reset_s(c, v, f"{key}.state_reset_s")
        ),
        state_warm_s=_optional(
            data, "state_warm_s", lambda v: c.number(v, f"{key}.state_warm_s", 0, MAX_STATE_RESET_S / 2)
        ),
    )


def _state_reset_s(c: _Checker, value: Any, key: str) -> float:
    seconds = c.number(value, key, 0, MAX_STATE_RESET_S)
    if 0 < seconds < MIN_STATE_RESET_S:
        raise c.error(key, f"expected 0 (one state for the whole stream) or >= {MIN_STATE_RESET_S} s")
    return seconds


def _models(c: _Checker, value: Any) -> tuple[ModelEntry, ...]:
    items = c.sequence(value, "models")
    if not items:
        raise c.error("models", "expected at least one model (leave the key out to run the shipped model)")
    return tuple(_model_entry(c, item, f"models[{i}]") for i, item in enumerate(items))


def _device(c: _Checker, value: Any, key: str) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return c.integer(value, key, 0, 10_000)
    if isinstance(value, str) and value.strip():
        return int(value) if value.strip().isdigit() else value
    raise c.error(key, f"expected a device name, an index or null, got {_show(value)}")


def _audio(c: _Checker, value: Any) -> AudioSettings:
    data = c.mapping(value, "audio", _AUDIO_KEYS)
    defaults = AudioSettings()
    return AudioSettings(
        device=_device(c, data.get("device"), "audio.device"),
        input=_optional(data, "input", lambda v: c.string(v, "audio.input")),
        chunk_ms=_optional(
            data, "chunk_ms", lambda v: c.integer(v, "audio.chunk_ms", 5, 500), defaults.chunk_ms
        ),
        buffer_s=_optional(
            data, "buffer_s", lambda v: c.number(v, "audio.buffer_s", 0.1, 600), defaults.buffer_s
        ),
        save_clips=_optional(data, "save_clips", lambda v: _clips(c, v)),
    )


def _clips(c: _Checker, value: Any, key: str = "audio.save_clips") -> ClipSettings:
    if isinstance(value, str):  # shorthand: just the directory
        value = {"dir": value}
    data = c.mapping(value, key, _CLIP_KEYS, required=("dir",))
    defaults = ClipSettings(dir=Path("."))
    return ClipSettings(
        dir=c.path(data["dir"], f"{key}.dir"),
        near_miss_threshold=_optional(data, "near_misses", lambda v: c.fraction(v, f"{key}.near_misses")),
        max_clips=_optional(
            data, "max_clips", lambda v: c.integer(v, f"{key}.max_clips", 1, 10_000_000), defaults.max_clips
        ),
        max_megabytes=_optional(
            data,
            "max_megabytes",
            lambda v: c.number(v, f"{key}.max_megabytes", 0, 10_000_000, open_low=True),
            defaults.max_megabytes,
        ),
    )


def _command(c: _Checker, value: Any, key: str) -> str | tuple[str, ...]:
    if isinstance(value, str):
        if not value.strip():
            raise c.error(key, "expected a command, got an empty string")
        return value
    if isinstance(value, list) and value and all(isinstance(a, str) and a for a in value):
        return tuple(value)
    raise c.error(key, f"expected a string or a non-empty list of non-empty strings, got {_show(value)}")


def _hook(c: _Checker, value: Any, key: str) -> HookSettings:
    if isinstance(value, (str, list)):  # shorthand: just the command
        value = {"command": value}
    data = c.mapping(value, key, _HOOK_KEYS, required=("command",))
    defaults = HookSettings(command="true")
    return HookSettings(
        command=_command(c, data["command"], f"{key}.command"),
        timeout_s=_optional(
            data,
            "timeout_s",
            lambda v: c.number(v, f"{key}.timeout_s", 0, 86400, open_low=True),
            defaults.timeout_s,
        ),
        max_concurrent=_optional(
            data,
            "max_concurrent",
            lambda v: c.integer(v, f"{key}.max_concurrent", 1, 100),
            defaults.max_concurrent,
        ),
    )


def _hooks(c: _Checker, value: Any) -> tuple[HookSettings, ...]:
    return tuple(_hook(c, item, f"hooks[{i}]") for i, item in enumerate(c.sequence(value, "hooks")))


def _log_level(c: _Checker, value: Any, key: str = "log_level") -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise c.error(key, f"expected one of {', '.join(LOG_LEVELS)}, got {_show(value)}")
    return value.upper()


def _topic_prefix(c: _Checker, value: Any) -> str:
    text = c.string(value, "mqtt.topic_prefix")
    if "+" in text or "#" in text or not text.strip("/"):
        raise c.error("mqtt.topic_prefix", f"expected an MQTT topic without + or #, got {_show(value)}")
    return text


def _mqtt(c: _Checker, value: Any) -> MqttSettings:
    data = c.mapping(value, "mqtt", _MQTT_KEYS, required=("host",))
    password = _optional(data, "password", lambda v: c.string(v, "mqtt.password"))
    password_env = _optional(data, "password_env", lambda v: c.string(v, "mqtt.password_env"))
    if password is not None and password_env is not None:
        raise c.error("mqtt.password_env", "give either password or password_env, not both")
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise c.error("mqtt.password_env", f"environment variable {password_env} is not set")
    tls: dict = {}
    if data.get("tls") is not None:
        raw = c.mapping(data["tls"], "mqtt.tls", _TLS_KEYS)
        tls = {
            # A tls mapping means TLS unless it says enabled: false.
            "tls": _optional(raw, "enabled", lambda v: c.boolean(v, "mqtt.tls.enabled"), True),
            "tls_ca_certs": _optional(raw, "ca_file", lambda v: str(c.path(v, "mqtt.tls.ca_file"))),
            "tls_certfile": _optional(raw, "certfile", lambda v: str(c.path(v, "mqtt.tls.certfile"))),
            "tls_keyfile": _optional(raw, "keyfile", lambda v: str(c.path(v, "mqtt.tls.keyfile"))),
            "tls_insecure": _optional(raw, "insecure", lambda v: c.boolean(v, "mqtt.tls.insecure"), False),
        }
        if tls["tls_keyfile"] and not tls["tls_certfile"]:
            raise c.error("mqtt.tls.keyfile", "a keyfile needs a certfile")
    defaults = MqttSettings(host="-")
    return MqttSettings(
        host=c.string(data["host"], "mqtt.host"),
        port=_optional(data, "port", lambda v: c.integer(v, "mqtt.port", 1, 65535), defaults.port),
        topic_prefix=_optional(data, "topic_prefix", lambda v: _topic_prefix(c, v)),
        username=_optional(data, "username", lambda v: c.string(v, "mqtt.username")),
        password=password,
        password_env=password_env,
        qos=_optional(data, "qos", lambda v: c.integer(v, "mqtt.qos", 0, 2), defaults.qos),
        client_id=_optional(data, "client_id", lambda v: c.string(v, "mqtt.client_id")),
        queue_size=_optional(data, "queue_size", lambda v: c.integer(v, "mqtt.queue_size", 1, 100_000), 100),
        keepalive_s=_optional(data, "keepalive_s", lambda v: c.integer(v, "mqtt.keepalive_s", 5, 3600), 60),
        **tls,
    )


def _service(c: _Checker, value: Any) -> ServiceSettings:
    data = c.mapping(value, "service", _SERVICE_KEYS)
    return ServiceSettings(
        status_interval_s=_optional(
            data,
            "status_interval_s",
            lambda v: c.number(v, "service.status_interval_s", 0, 3600, open_low=True),
            ServiceSettings().status_interval_s,
        )
    )


def config_from_mapping(data: Any, source: str = BUILTIN_SOURCE, base_dir: Path | None = None) -> Config:
    """Validate a parsed YAML document (``None`` = empty file = all defaults)."""
    c = _Checker(source, base_dir)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise c.error("", f"expected a mapping of keys at the top level, got {type(data).__name__}")
    # Top-level keys starting with "x-" are ignored (the docker-compose convention): a place to keep
    # YAML anchors that hooks or models then merge with `<<: *name`.
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    data = c.mapping(data, "", _TOP_KEYS)
    defaults = default_config()
    return Config(
        models=_optional(data, "models", lambda v: _models(c, v), defaults.models),
        audio=_optional(data, "audio", lambda v: _audio(c, v), defaults.audio),
        hooks=_optional(data, "hooks", lambda v: _hooks(c, v), ()),
        log_level=_optional(data, "log_level", lambda v: _log_level(c, v), defaults.log_level),
        mqtt=_optional(data, "mqtt", lambda v: _mqtt(c, v)),
        service=_optional(data, "service", lambda v: _service(c, v), defaults.service),
    )


# --- files -----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error instead of silently last-wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: merged keys are meant to be overridden; the base class merges
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key; the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise ConfigError(f"{source}: YAML syntax error{where}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {' '.join(str(exc).split())}") from exc
    except RecursionError as exc:  # found by tests/test_fuzz.py: "[[[[...", "{a: {a: ..."
        raise ConfigError(f"{source}: YAML nested too deeply") from exc
    except Exception as exc:  # PyYAML's constructors raise bare ValueError ("2001-13-45", "!!int x"),
        # IndexError ("!!int " with no value) and the like on hostile scalars: all found by test_fuzz.py
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ConfigError(f"{source}: YAML value not understood: {detail}") from exc


def read_config_file(path: Path) -> Config:
    """Load one file (it must exist)."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: config file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{source}: is a directory, not a config file") from exc
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from exc
    config = config_from_mapping(_parse_yaml(text, source), source, path.resolve().parent)
    return replace(config, source=path)


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/wakeword/config.yaml``, with ``~/.config`` when the variable is unset or empty."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "wakeword" / "config.yaml"


def config_search_path(system_path: Path = SYSTEM_CONFIG_PATH) -> list[Path]:
    """Where :func:`load_config` looks when no path is given, in order."""
    return [user_config_path(), system_path]


def load_config(path: str | Path | None = None, *, system_path: Path = SYSTEM_CONFIG_PATH) -> Config:
    """The config to run: ``path`` if given, else the first file on the search path, else defaults."""
    if path is not None:
        return read_config_file(Path(path).expanduser())
    for candidate in config_search_path(system_path):
        if candidate.is_file():
            logging.getLogger(__name__).debug("using config %s", candidate)
            return read_config_file(candidate)
    return default_config()


def with_overrides(
    config: Config,
    *,
    models: Sequence[str | Path] | None = None,
    threshold: float | None = None,
    device: str | int | None = None,
    input: str | None = None,  # noqa: A002 - mirrors the --input flag and the audio.input key
    log_level: str | None = None,
    save_clips: str | Path | None = None,
    near_misses: float | None = None,
    max_clips: int | None = None,
    max_megabytes: float | None = None,
) -> Config:
    """A new Config with command-line flags laid over it; ``None`` leaves a key as it is.

    ``models`` replaces the model list (paths relative to the working directory);
    ``threshold`` applies to every model; ``save_clips`` sets the clip directory, and the
    other clip options need one (from here or from the config).
    """
    c = _Checker(COMMAND_LINE_SOURCE, None)
    result = config
    if models is not None:
        if not models:
            raise c.error("--model", "expected at least one model path")
        entries = tuple(ModelEntry(c.path(str(p), "--model")) for p in models)
        result = replace(result, models=entries)
    if threshold is not None:
        value = c.fraction(threshold, "--threshold")
        result = replace(result, models=tuple(replace(m, threshold=value) for m in result.models))
    if device is not None:
        result = replace(result, audio=replace(result.audio, device=_device(c, device, "--device")))
    if input is not None:
        result = replace(result, audio=replace(result.audio, input=c.string(input, "--input")))
    if log_level is not None:
        result = replace(result, log_level=_log_level(c, log_level, "--log-level"))
    clips = result.audio.save_clips
    if save_clips is not None:
        directory = c.path(str(save_clips), "--save-clips")
        clips = replace(clips, dir=directory) if clips is not None else ClipSettings(dir=directory)
    for flag, value in (
        ("--save-near-misses", near_misses),
        ("--max-clips", max_clips),
        ("--max-megabytes", max_megabytes),
    ):
        if value is not None and clips is None:
            raise c.error(flag, "needs --save-clips DIR (or audio.save_clips in the config)")
    if clips is not None:
        if near_misses is not None:
            clips = replace(clips, near_miss_threshold=c.fraction(near_misses, "--save-near-misses"))
        if max_clips is not None:
            clips = replace(clips, max_clips=c.integer(max_clips, "--max-clips", 1, 10_000_000))
        if max_megabytes is not None:
            clips = replace(
                clips, max_megabytes=c.number(max_megabytes, "--max-megabytes", 0, 10_000_000, open_low=True)
            )
        result = replace(result, audio=replace(result.audio, save_clips=clips))
    return result
