"""Config: YAML -> dataclasses, search order, one-line errors naming file and key, CLI overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wakeword.config import (
    AudioSettings,
    Config,
    ModelEntry,
    MqttSettings,
    ServiceSettings,
    config_from_mapping,
    load_config,
    with_overrides,
)
from wakeword.errors import ConfigError
from wakeword.hooks import HookSettings
from wakeword.metadata import DetectorSettings
from wakeword.model import MODEL_DIR_ENV, default_model_path


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the real ~/.config or /etc: point HOME and XDG_CONFIG_HOME at empty dirs."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)


@pytest.fixture
def no_system(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "wakeword" / "config.yaml"  # does not exist


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path / "config.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: ") :]


# --- a full file ---------------------------------------------------------------------------------


def test_full_config_loads_into_dataclasses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_SECRET", "s3cret")
    path = _write(
        tmp_path / "conf" / "config.yaml",
        """
        models:
          - path: models/espresso.onnx
            threshold: 0.7
            patience_frames: 5
          - path: /abs/other.onnx
            smoothing_frames: 3
            refractory_s: 2
          - ~/home.onnx
        audio:
          device: 2
          input: "-"
          chunk_ms: 30
          buffer_s: 4.5
        hooks:
          - command: ["/usr/bin/notify-send", "wake"]
            timeout_s: 3
            max_concurrent: 1
          - command: echo "$WAKEWORD_NAME" >> /tmp/log
          - /bin/true
        log_level: debug
        mqtt:
          host: broker.local
          port: 8883
          topic_prefix: home/kitchen
          username: pi
          password_env: BROKER_SECRET
          tls: {ca_file: ca.pem, certfile: c.pem, keyfile: k.pem, insecure: false}
          qos: 1
          client_id: kitchen
          queue_size: 7
        service:
          status_interval_s: 2.5
        """,
    )
    config = load_config(path)
    conf_dir = path.resolve().parent
    assert config.source == path
    assert config.models == (
        ModelEntry(conf_dir / "models/espresso.onnx", threshold=0.7, patience_frames=5),
        ModelEntry(Path("/abs/other.onnx"), smoothing_frames=3, refractory_s=2.0),
        ModelEntry(tmp_path / "home" / "home.onnx"),
    )
    assert config.audio == AudioSettings(device=2, input="-", chunk_ms=30, buffer_s=4.5)
    assert config.audio.block_s == pytest.approx(0.03)
    assert config.hooks == (
        HookSettings(command=("/usr/bin/notify-send", "wake"), timeout_s=3.0, max_concurrent=1),
        HookSettings(command='echo "$WAKEWORD_NAME" >> /tmp/log'),
        HookSettings(command="/bin/true"),
    )
    assert config.log_level == "DEBUG"
    assert config.mqtt == MqttSettings(
        host="broker.local",
        port=8883,
        topic_prefix="home/kitchen",
        username="pi",
        password="s3cret",
        password_env="BROKER_SECRET",
        tls=True,
        tls_ca_certs=str(conf_dir / "ca.pem"),
        tls_certfile=str(conf_dir / "c.pem"),
        tls_keyfile=str(conf_dir / "k.pem"),
        qos=1,
        client_id="kitchen",
        queue_size=7,
    )
    assert "s3cret" not in repr(config)  # secrets stay out of logs
    assert config.service == ServiceSettings(status_interval_s=2.5)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path / "config.yaml", ""))
    assert config.models == (ModelEntry(default_model_path()),)
    assert config.audio == AudioSettings()
    assert config.hooks == ()
    assert config.mqtt is None
    assert config.log_level == "INFO"


def test_model_entry_overlays_only_the_keys_it_sets() -> None:
    defaults = DetectorSettings(threshold=0.4, smoothing_frames=2, patience_frames=3, refractory_s=1.0)
    entry = ModelEntry(Path("x.onnx"), threshold=0.9, refractory_s=0.0)
    assert entry.detector_settings(defaults) == DetectorSettings(0.9, 2, 3, 0.0)
    assert ModelEntry(Path("x.onnx")).detector_settings(defaults) == defaults


def test_tls_can_be_switched_off_and_defaults_to_off(tmp_path: Path) -> None:
    off = load_config(_write(tmp_path / "a.yaml", "mqtt: {host: h, tls: {enabled: false, ca_file: /x}}"))
    assert off.mqtt is not None and off.mqtt.tls is False
    plain = load_config(_write(tmp_path / "b.yaml", "mqtt: {host: h}"))
    assert plain.mqtt == MqttSettings(host="h")


def test_numeric_device_string_becomes_an_index(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path / "c.yaml", "audio: {device: '3'}")).audio.device == 3
    assert load_config(_write(tmp_path / "d.yaml", "audio: {device: pulse}")).audio.device == "pulse"


# --- search order ----------------------------------------------------------------------------


def test_defaults_when_no_file_exists(no_system: Path) -> None:
    config = load_config(system_path=no_system)
    assert config.source is None
    assert config.models == (ModelEntry(default_model_path()),)


def test_builtin_default_points_to_the_shipped_model(no_system: Path) -> None:
    (entry,) = load_config(system_path=no_system).models
    assert entry.path == Path(__file__).resolve().parent.parent / "models" / "espresso.onnx"
    assert entry.threshold is None  # the model's own evaluated settings apply


def test_builtin_default_follows_the_model_dir_variable(
    no_system: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "share"))
    (entry,) = load_config(system_path=no_system).models
    assert entry.path == tmp_path / "share" / "espresso.onnx"


def test_system_file_is_used_when_there_is_no_user_file(tmp_path: Path) -> None:
    system = _write(tmp_path / "etc" / "config.yaml", "log_level: WARNING")
    config = load_config(system_path=system)
    assert (config.source, config.log_level) == (system, "WARNING")


def test_user_file_wins_over_system_file(tmp_path: Path) -> None:
    system = _write(tmp_path / "etc" / "config.yaml", "log_level: WARNING")
    user = _write(tmp_path / "xdg" / "wakeword" / "config.yaml", "log_level: ERROR")
    config = load_config(system_path=system)
    assert (config.source, config.log_level) == (user, "ERROR")


def test_home_dot_config_when_xdg_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    user = _write(tmp_path / "home" / ".config" / "wakeword" / "config.yaml", "log_level: ERROR")
    assert load_config(system_path=no_system).source == user


def test_explicit_path_wins_over_everything(tmp_path: Path) -> None:
    system = _write(tmp_path / "etc" / "config.yaml", "log_level: WARNING")
    _write(tmp_path / "xdg" / "wakeword" / "config.yaml", "log_level: ERROR")
    explicit = _write(tmp_path / "mine.yaml", "log_level: CRITICAL")
    assert load_config(str(explicit), system_path=system).log_level == "CRITICAL"


def test_explicit_path_that_is_missing_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "xdg" / "wakeword" / "config.yaml", "log_level: ERROR")
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_bad_user_file_is_reported_not_skipped(tmp_path: Path) -> None:
    system = _write(tmp_path / "etc" / "config.yaml", "log_level: WARNING")
    user = _write(tmp_path / "xdg" / "wakeword" / "config.yaml", "log_level: [")
    with pytest.raises(ConfigError, match=str(user)):
        load_config(system_path=system)


# --- errors: one line, file and dotted key ---------------------------------------------------


def test_the_documented_example_message(tmp_path: Path) -> None:
    message = _error(tmp_path, "models:\n  - path: a.onnx\n    threshold: high\n")
    assert message == "models[0].threshold: expected a number between 0 and 1, got 'high'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bogus: 1", "bogus: unknown key"),
        ("models: [{path: a.onnx, treshold: 0.5}]", "models[0].treshold: unknown key"),
        ("audio: {chunk: 20}", "audio.chunk: unknown key"),
        ("mqtt: {host: h, tls: {cafile: x}}", "mqtt.tls.cafile: unknown key"),
        ("models: a.onnx", "models: expected a list"),
        ("models: []", "models: expected at least one model"),
        ("models: [{threshold: 0.5}]", "models[0].path: required key is missing"),
        ("models: [{path: 3}]", "models[0].path: expected a non-empty string"),
        ("models: [{path: a, threshold: 1.0}]", "models[0].threshold: expected a number between 0 and 1"),
        ("models: [{path: a, threshold: 0}]", "models[0].threshold: expected a number between 0 and 1"),
        ("models: [{path: a, threshold: true}]", "models[0].threshold: expected a number between 0 and 1"),
        (
            "models: [a, {path: b, smoothing_frames: 0}]",
            "models[1].smoothing_frames: expected a whole number",
        ),
        ("models: [{path: a, patience_frames: 2.5}]", "models[0].patience_frames: expected a whole number"),
        ("models: [{path: a, refractory_s: -1}]", "models[0].refractory_s: expected a number between 0 and"),
        ("models: [{path: a, refractory_s: .nan}]", "models[0].refractory_s: expected a number"),
        ("models: [7]", "models[0]: expected a mapping"),
        ("audio: {chunk_ms: 0}", "audio.chunk_ms: expected a whole number between 5 and 500, got 0"),
        ("audio: {chunk_ms: 20.5}", "audio.chunk_ms: expected a whole number"),
        ("audio: {chunk_ms: '20'}", "audio.chunk_ms: expected a whole number"),
        ("audio: {buffer_s: 0}", "audio.buffer_s: expected a number between 0.1 and 600, got 0"),
        ("audio: {device: -1}", "audio.device: expected a whole number"),
        ("audio: {device: [1]}", "audio.device: expected a device name, an index or null"),
        ("audio: {input: ''}", "audio.input: expected a non-empty string"),
        ("audio: 5", "audio: expected a mapping"),
        ("hooks: {command: x}", "hooks: expected a list"),
        ("hooks: [{timeout_s: 3}]", "hooks[0].command: required key is missing"),
        ("hooks: [{command: []}]", "hooks[0].command: expected a string or a non-empty list"),
        ("hooks: [{command: [ls, 3]}]", "hooks[0].command: expected a string or a non-empty list"),
        ("hooks: [{command: '  '}]", "hooks[0].command: expected a command"),
        ("hooks: [{command: x, timeout_s: 0}]", "hooks[0].timeout_s: expected a number between 0 and"),
        ("hooks: [{command: x, max_concurrent: 0}]", "hooks[0].max_concurrent: expected a whole number"),
        ("log_level: LOUD", "log_level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
        ("mqtt: {port: 1}", "mqtt.host: required key is missing"),
        ("mqtt: {host: h, port: 70000}", "mqtt.port: expected a whole number between 1 and 65535"),
        ("mqtt: {host: h, qos: 3}", "mqtt.qos: expected a whole number between 0 and 2, got 3"),
        ("mqtt: {host: h, queue_size: 0}", "mqtt.queue_size: expected a whole number"),
        ("mqtt: {host: h, topic_prefix: 'a/#'}", "mqtt.topic_prefix: expected an MQTT topic without + or #"),
        ("mqtt: {host: h, password: p, password_env: P}", "mqtt.password_env: give either password"),
        (
            "mqtt: {host: h, password_env: WAKEWORD_TEST_UNSET}",
            "environment variable WAKEWORD_TEST_UNSET is not set",
        ),
        ("mqtt: {host: h, tls: {keyfile: k}}", "mqtt.tls.keyfile: a keyfile needs a certfile"),
        ("mqtt: {host: h, tls: {enabled: 'yes please'}}", "mqtt.tls.enabled: expected true or false"),
        ("mqtt: {host: h, tls: true}", "mqtt.tls: expected a mapping"),
        ("service: {status_interval_s: 0}", "service.status_interval_s: expected a number"),
        ("service: {watchdog_s: 5}", "service.watchdog_s: unknown key"),
        ("audio: {save_clips: ''}", "audio.save_clips.dir: expected a non-empty string"),
        ("audio: {save_clips: {near_misses: 0.5}}", "audio.save_clips.dir: required key is missing"),
        ("audio: {save_clips: {dir: c, near_misses: 1}}", "audio.save_clips.near_misses: expected a number"),
        (
            "audio: {save_clips: {dir: c, max_clips: 0}}",
            "audio.save_clips.max_clips: expected a whole number",
        ),
        ("audio: {save_clips: {dir: c, max_megabytes: 0}}", "audio.save_clips.max_megabytes: expected"),
        ("audio: {save_clips: {dir: c, keep: 3}}", "audio.save_clips.keep: unknown key"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(tmp_path, text)


def test_yaml_syntax_error_gives_the_position(tmp_path: Path) -> None:
    message = _error(tmp_path, "models:\n  - path: a.onnx\n    threshold: [0.5\n")
    assert message.startswith("YAML syntax error at line")


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    message = _error(tmp_path, "log_level: INFO\nlog_level: DEBUG\n")
    assert "duplicate key 'log_level'" in message and "line 2" in message


def test_yaml_merge_keys_share_settings_and_explicit_keys_override_them(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "config.yaml",
        """
        x-quiet-hook: &quiet
          command: ["true"]
          timeout_s: 2
        hooks:
          - <<: *quiet
          - <<: *quiet
            command: ["echo", "two"]
            timeout_s: 7
        """,
    )
    hooks = load_config(path).hooks
    assert [(h.command, h.timeout_s) for h in hooks] == [(("true",), 2.0), (("echo", "two"), 7.0)]
    # keys outside "x-" are still checked, and a key written twice by hand is still an error
    assert "unknown key" in _error(tmp_path, "extras: &e {a: 1}\n")
    assert "duplicate key" in _error(tmp_path, "x-a: &a {b: 1}\nlog_level: INFO\nlog_level: INFO\n")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    assert "expected a mapping of keys at the top level" in _error(tmp_path, text)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"log_level: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_python_tags_are_refused_by_safe_load(tmp_path: Path) -> None:
    message = _error(tmp_path, "log_level: !!python/object/apply:os.system ['touch pwned']\n")
    assert "YAML syntax error" in message
    assert not (tmp_path / "pwned").exists()


# --- command-line overrides ------------------------------------------------------------------


def _base() -> Config:
    return config_from_mapping(
        {"models": [{"path": "/m/a.onnx", "threshold": 0.3}, "/m/b.onnx"], "audio": {"device": "pulse"}}
    )


def test_overrides_return_a_new_config_and_leave_the_old_one() -> None:
    base = _base()
    new = with_overrides(base, threshold=0.8, device="4", input="clip.wav", log_level="debug")
    assert [m.threshold for m in new.models] == [0.8, 0.8]
    assert [m.path for m in new.models] == [Path("/m/a.onnx"), Path("/m/b.onnx")]
    assert (new.audio.device, new.audio.input, new.log_level) == (4, "clip.wav", "DEBUG")
    assert base.models[0].threshold == 0.3 and base.audio.device == "pulse"


def test_model_override_replaces_the_list_and_then_threshold_applies() -> None:
    new = with_overrides(_base(), models=["x.onnx", Path("/y.onnx")], threshold=0.6)
    assert new.models == (
        ModelEntry(Path("x.onnx"), threshold=0.6),
        ModelEntry(Path("/y.onnx"), threshold=0.6),
    )


def test_no_overrides_is_the_same_config() -> None:
    base = _base()
    assert with_overrides(base) == base


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"threshold": 1.5}, "command line: --threshold: expected a number between 0 and 1, got 1.5"),
        ({"models": []}, "command line: --model: expected at least one model path"),
        ({"input": ""}, "command line: --input: expected a non-empty string"),
        ({"log_level": "chatty"}, "command line: --log-level: expected one of"),
    ],
)
def test_bad_overrides_are_config_errors(kwargs: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(_base(), **kwargs)
    assert str(info.value).startswith(expected)


# --- fuzz: anything YAML-shaped loads or is a ConfigError, never another exception -----------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "a.onnx", "INFO", "-", "pulse", "3", "$(x)", "h"]),
    st.text(max_size=8),
)
_keys = st.sampled_from(
    ["models", "audio", "hooks", "log_level", "mqtt", "service", "path", "threshold", "device", "input",
     "chunk_ms", "buffer_s", "command", "timeout_s", "max_concurrent", "host", "port", "tls", "qos",
     "enabled", "ca_file", "status_interval_s", "bogus", "smoothing_frames", "refractory_s"]
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.dictionaries(_keys, _values, max_size=5), _values))
def test_fuzzed_documents_load_or_raise_config_error(document) -> None:
    try:
        config = config_from_mapping(document, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml: ")
        assert "\n" not in str(exc)
    else:
        assert isinstance(config, Config) and config.models


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_keys, _values, max_size=5))
def test_fuzzed_files_round_trip_through_yaml(tmp_path: Path, document) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: ")


def test_save_clips_shorthand_mapping_and_flags(tmp_path: Path) -> None:
    from wakeword.config import ClipSettings

    short = load_config(_write(tmp_path / "a" / "config.yaml", "audio: {save_clips: clips}"))
    assert short.audio.save_clips == ClipSettings(dir=tmp_path / "a" / "clips")  # relative to the file
    full = load_config(
        _write(
            tmp_path / "b.yaml",
            "audio: {save_clips: {dir: /c, near_misses: 0.4, max_clips: 5, max_megabytes: 1.5}}",
        )
    )
    assert full.audio.save_clips == ClipSettings(Path("/c"), 0.4, 5, 1.5)
    flags = with_overrides(full, save_clips="d", near_misses=0.6, max_clips=7)
    assert flags.audio.save_clips == ClipSettings(Path("d"), 0.6, 7, 1.5)
    assert load_config(_write(tmp_path / "c.yaml", "")).audio.save_clips is None  # off by default
    with pytest.raises(ConfigError, match="--save-near-misses: needs --save-clips DIR"):
        with_overrides(short.__class__(models=short.models), near_misses=0.5)
