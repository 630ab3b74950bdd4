"""MqttPublisher against a real mosquitto broker (Debian package) on a free loopback port.

Subscribers are real paho clients. Broker outages are real: the mosquitto process is
stopped and started again on the same port. Where a test needs the subscriber to
miss nothing while the broker restarts, the broker keeps sessions on disk
(``persistence true``) and the subscriber holds a durable session (clean_session off,
QoS 1), so messages published before it has reconnected still reach it.
"""

from __future__ import annotations

import getpass
import itertools
import json
import logging
import queue
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

paho = pytest.importorskip("paho.mqtt.client", reason="the integrations extra (paho-mqtt) is not installed")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from wakeword.config import MqttSettings, config_from_mapping  # noqa: E402
from wakeword.detector import Detection  # noqa: E402
from wakeword.mqtt import MqttPublisher  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
GUARD_S = 30.0  # only turns a hang into a failure; not a timing assertion
PREFIX = "test/wakeword"

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


class Broker:
    """A mosquitto process on a fixed loopback port that can be stopped and started again."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        persistence: bool = False,
        password_file: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {port} 127.0.0.1",
            f"allow_anonymous {str(password_file is None).lower()}",
            f"persistence {str(persistence).lower()}",
            # mosquitto started as root drops to user "mosquitto", who cannot write pytest's
            # private tmp dir; naming the current user keeps it as is (no effect for non-root).
            f"user {getpass.getuser()}",
        ]
        if persistence:
            lines.append(f"persistence_location {workdir}/")
        if password_file is not None:
            lines.append(f"password_file {password_file}")
        lines.extend(extra)
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        wait_until(self._accepts, f"mosquitto on port {self.port} ({self.log})")

    def _accepts(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited: {self.log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file and exits
            self.proc.wait(timeout=GUARD_S)
        self.proc = None


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path, free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture
def durable_broker(tmp_path):
    b = Broker(tmp_path, free_port(), persistence=True)
    b.start()
    yield b
    b.stop()


_ids = itertools.count()


class Subscriber:
    """A paho client that records every message under PREFIX (re-subscribing after reconnects)."""

    def __init__(self, port: int, durable: bool = False, auth: tuple[str, str] | None = None) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-sub-{next(_ids)}", clean_session=not durable
        )
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        # Only once the broker has acknowledged the subscription is a message sent now seen: on a
        # loaded machine a publisher could otherwise connect and publish first, and the test
        # would wait for a message the broker never routed to us.
        assert self.subscribed.wait(GUARD_S), "the test subscriber never got its SUBACK"

    def next_any(self) -> paho.MQTTMessage:
        return self.messages.get(timeout=GUARD_S)

    def next(self, topic: str) -> paho.MQTTMessage:
        """The next message on ``topic`` (others are skipped)."""
        while (msg := self.next_any()).topic != topic:
            pass
        return msg

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settings(port: int, **overrides) -> MqttSettings:
    return MqttSettings(**{"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX, **overrides})


def detection(n: int = 0) -> Detection:
    return Detection(wake_word="espresso", score=0.5 + n / 100, time_s=1.25 + n, frame=100 + n)


def test_detection_is_published_as_json_and_status_is_online_and_retained(broker):
    sub = Subscriber(broker.port)
    publisher = MqttPublisher(settings(broker.port), hostname="kitchen-pi")
    late = None
    try:
        assert sub.next(f"{PREFIX}/status").payload == b"online"
        publisher.handle(detection())
        msg = sub.next(f"{PREFIX}/detection")
        # A client that subscribes later still learns the availability: the status is retained.
        late = Subscriber(broker.port)
        online = late.next(f"{PREFIX}/status")
        publisher.close()
        offline = late.next(f"{PREFIX}/status")  # a clean close says goodbye
    finally:
        publisher.close()
        sub.close()
        if late is not None:
            late.close()

    event = json.loads(msg.payload)
    assert set(event) == {"wake_word", "score", "time", "host"}
    assert event["wake_word"] == "espresso"
    assert event["score"] == pytest.approx(0.5)
    assert event["host"] == "kitchen-pi"
    assert datetime.fromisoformat(event["time"]).utcoffset() is not None  # ISO 8601 with a time zone
    assert (online.payload, online.retain) == (b"online", True)
    assert offline.payload == b"offline"


def test_default_topic_prefix_is_wakeword_slash_hostname(broker):
    host = "test-host-1"
    sub = paho.Client(CallbackAPIVersion.VERSION2)
    got: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    sub.on_message = lambda _c, _u, msg: got.put(msg)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(f"wakeword/{host}/#", qos=1)
    sub.loop_start()
    assert subscribed.wait(GUARD_S)  # the detection is not retained: subscribe before it is sent
    publisher = MqttPublisher(settings(broker.port, topic_prefix=None), hostname=host)
    try:
        publisher.handle(detection())
        topics = {got.get(timeout=GUARD_S).topic for _ in range(2)}
    finally:
        publisher.close()
        sub.disconnect()
        sub.loop_stop()
    assert topics == {f"wakeword/{host}/status", f"wakeword/{host}/detection"}


@pytest.mark.parametrize("created", ["before_outage", "during_outage"])
def test_detections_during_a_broker_outage_arrive_after_it_returns(durable_broker, created, caplog):
    caplog.set_level(logging.INFO, logger="wakeword.mqtt")
    sub = Subscriber(durable_broker.port, durable=True)
    publisher = None
    try:
        if created == "before_outage":
            publisher = MqttPublisher(settings(durable_broker.port, queue_size=2))
            wait_until(lambda: publisher.connected, "publisher to connect")
        durable_broker.stop()
        if created == "during_outage":  # a dead broker at start-up must not block either
            publisher = MqttPublisher(settings(durable_broker.port, queue_size=2))
        else:
            wait_until(lambda: not publisher.connected, "publisher to notice the outage")

        for n in range(3):  # returns at once and the loop goes on; the oldest one is dropped
            publisher.handle(detection(n))
        assert publisher.pending == 2 and publisher.dropped == 1

        durable_broker.start()
        wait_until(lambda: publisher.pending == 0, "the queue to drain")
        publisher.handle(detection(9))  # published after the queued ones: marks the end
        received = []
        while not received or received[-1] != pytest.approx(0.59):
            received.append(json.loads(sub.next(f"{PREFIX}/detection").payload)["score"])
    finally:
        if publisher is not None:
            publisher.close()
        sub.close()

    # In order, the newest two queued ones, each once, then the one after the reconnect.
    assert received == [pytest.approx(0.51), pytest.approx(0.52), pytest.approx(0.59)]
    assert "1 detection(s) dropped while offline" in caplog.text


LAST_WILL_CHILD = textwrap.dedent(
    """
    import sys, time
    from wakeword.config import MqttSettings
    from wakeword.mqtt import MqttPublisher
    publisher = MqttPublisher(MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), topic_prefix=sys.argv[2]))
    while not publisher.connected:
        time.sleep(0.01)
    print("connected", flush=True)
    time.sleep(600)
    """
)


def test_killed_process_leaves_a_retained_offline_status_via_last_will(broker):
    sub = Subscriber(broker.port)
    child = subprocess.Popen(
        [sys.executable, "-c", LAST_WILL_CHILD, str(broker.port), PREFIX],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert child.stdout.readline().strip() == "connected"
        assert sub.next(f"{PREFIX}/status").payload == b"online"
        child.send_signal(signal.SIGKILL)  # no clean close: only the broker can say offline now
        child.wait(timeout=GUARD_S)
        status = sub.next(f"{PREFIX}/status")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        sub.close()
    assert status.payload == b"offline"


@pytest.fixture
def auth_broker(tmp_path):
    password_file = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(password_file), "wakeword", "s3cret"], check=True)
    password_file.chmod(0o600)
    b = Broker(tmp_path, free_port(), password_file=password_file)
    b.start()
    yield b
    b.stop()


def mqtt_config(port: int, **keys) -> MqttSettings:
    """Settings the way the daemon gets them: through the config loader."""
    mqtt = {"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX, **keys}
    config = config_from_mapping({"mqtt": mqtt})
    assert config.mqtt is not None
    return config.mqtt


def test_username_with_password_from_an_environment_variable_authenticates(auth_broker, monkeypatch):
    monkeypatch.setenv("TEST_WAKEWORD_MQTT_PASSWORD", "s3cret")
    sub = Subscriber(auth_broker.port, auth=("wakeword", "s3cret"))
    publisher = MqttPublisher(
        mqtt_config(auth_broker.port, username="wakeword", password_env="TEST_WAKEWORD_MQTT_PASSWORD")
    )
    try:
        publisher.handle(detection())
        event = json.loads(sub.next(f"{PREFIX}/detection").payload)
    finally:
        publisher.close()
        sub.close()
    assert event["wake_word"] == "espresso"


def test_wrong_password_is_logged_and_never_blocks_detection_handling(auth_broker, caplog):
    caplog.set_level(logging.WARNING, logger="wakeword.mqtt")
    publisher = MqttPublisher(mqtt_config(auth_broker.port, username="wakeword", password="wrong"))
    try:
        wait_until(lambda: "refused the connection" in caplog.text, "the refusal to be logged")
        publisher.handle(detection())  # returns; the detection waits in the queue
        assert not publisher.connected and publisher.pending == 1
    finally:
        publisher.close(timeout_s=0.1)
    assert "1 queued detection(s) not published" in caplog.text


def test_reload_closing_the_old_publisher_leaves_the_status_online(broker):
    """SIGHUP builds the new publisher, then closes the old one: the topic must still say online."""
    old = MqttPublisher(settings(broker.port))
    wait_until(lambda: old.connected, "the first publisher to connect")
    new = MqttPublisher(settings(broker.port))
    wait_until(lambda: new.connected, "the second publisher to connect")
    old.close()
    sub = Subscriber(broker.port)
    try:
        after_reload = sub.next(f"{PREFIX}/status")
        new.handle(detection())  # the new one works (its id did not clash with the old one's)
        event = json.loads(sub.next(f"{PREFIX}/detection").payload)
        new.close()
        after_stop = sub.next(f"{PREFIX}/status")
    finally:
        new.close()
        sub.close()
    assert after_reload.payload == b"online"
    assert event["wake_word"] == "espresso"
    assert after_stop.payload == b"offline"


def test_sighup_during_a_broker_outage_hands_queued_detections_to_the_new_publisher(durable_broker, caplog):
    """Chaos soak (issue 19): a reload while the broker was down closed the old publisher with its
    queue, and the detections it held were lost ("1 queued detection(s) not published"). The
    reload now hands the queue to the new publisher, which delivers it when the broker returns."""
    from wakeword.listen import Pipeline

    caplog.set_level(logging.INFO, logger="wakeword.mqtt")
    sub = Subscriber(durable_broker.port, durable=True)
    old = MqttPublisher(settings(durable_broker.port))
    new = None
    try:
        wait_until(lambda: old.connected, "the publisher to connect")
        durable_broker.stop()
        wait_until(lambda: not old.connected, "the publisher to notice the outage")
        old.handle(detection(1))
        old.handle(detection(2))
        new = MqttPublisher(settings(durable_broker.port))  # what SIGHUP builds, beside the old one
        Pipeline(None, [("mqtt", old)]).hand_over(Pipeline(None, [("mqtt", new)]))  # type: ignore[arg-type]
        old.close(timeout_s=0.1)
        assert "not published" not in caplog.text
        assert new.pending == 2
        durable_broker.start()
        wait_until(lambda: new.pending == 0, "the handed-over queue to drain")
        received = [json.loads(sub.next(f"{PREFIX}/detection").payload)["score"] for _ in range(2)]
    finally:
        old.close()
        if new is not None:
            new.close()
        sub.close()
    assert received == [pytest.approx(0.51), pytest.approx(0.52)]


def test_publisher_reconnects_within_seconds_of_the_broker_returning_after_a_long_outage(broker):
    """Chaos soak (issue 19): after a broker outage of a minute, paho's backoff (doubling up to
    30 s) left the daemon disconnected for up to 30 s after the broker was back. 17 s of outage is
    enough to show it (waits 1+2+4+8 s, then 16 s: the old code reconnected ~14 s late)."""
    publisher = MqttPublisher(settings(broker.port))
    try:
        wait_until(lambda: publisher.connected, "the publisher to connect")
        broker.stop()
        wait_until(lambda: not publisher.connected, "the publisher to notice the outage")
        time.sleep(17.0)
        broker.start()
        back = time.monotonic()
        while not publisher.connected and time.monotonic() - back < 10.0:
            time.sleep(0.05)
        took = time.monotonic() - back
    finally:
        publisher.close()
    assert took <= 5.0, f"reconnected {took:.1f} s after the broker returned"


def make_certificates(directory: Path) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1, made with openssl for this test."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    p = {name: directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")}
    san = directory / "san.cnf"
    san.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["req", "-x509", *new_key, "-keyout", p["ca.key"], "-out", p["ca.pem"], "-subj", "/CN=test-ca"],
        ["req", *new_key, "-keyout", p["server.key"], "-out", p["server.csr"], "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", p["server.csr"], "-CA", p["ca.pem"], "-CAkey", p["ca.key"]]
        + ["-CAcreateserial", "-out", p["server.pem"], "-days", "2", "-extfile", san],
    ]
    for args in commands:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    return p


def test_tls_to_a_broker_with_a_private_ca(tmp_path):
    certs = make_certificates(tmp_path)
    tls_port = free_port()
    tls_listener = [
        f"listener {tls_port} 127.0.0.1",
        f"cafile {certs['ca.pem']}",
        f"certfile {certs['server.pem']}",
        f"keyfile {certs['server.key']}",
    ]
    broker = Broker(tmp_path, free_port(), extra=tls_listener)  # plain listener for the subscriber
    broker.start()
    sub = Subscriber(broker.port)
    publisher = MqttPublisher(mqtt_config(tls_port, tls={"ca_file": str(certs["ca.pem"])}))
    try:
        publisher.handle(detection())
        event = json.loads(sub.next(f"{PREFIX}/detection").payload)
    finally:
        publisher.close()
        sub.close()
        broker.stop()
    assert event["wake_word"] == "espresso"
    assert publisher.broker.startswith("mqtts://")


def test_handle_after_close_is_ignored_and_close_is_idempotent(broker):
    publisher = MqttPublisher(settings(broker.port))
    publisher.close()
    publisher.handle(detection())  # a late detection during shutdown must not raise
    publisher.close()
    assert publisher.pending == 0


def test_bad_tls_file_is_a_config_error_naming_mqtt(tmp_path):
    from wakeword.errors import ConfigError

    with pytest.raises(ConfigError, match="mqtt"):
        MqttPublisher(settings(free_port(), tls=True, tls_ca_certs=str(tmp_path / "missing-ca.pem")))


def test_wildcards_in_the_topic_prefix_are_a_config_error():
    from wakeword.errors import ConfigError

    with pytest.raises(ConfigError, match="topic_prefix"):
        MqttPublisher(settings(free_port(), topic_prefix="wakeword/#"))


# -- through the daemon: `wakeword listen --input clip.wav` with an mqtt section -----------


def loud_burst_wav(path: Path) -> Path:
    """16 kHz mono: 1 s quiet, 0.6 s loud noise (what the ``loud`` fixture model fires on), 1 s quiet."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(3)
    quiet = lambda seconds: rng.normal(0.0, 0.0005, int(seconds * 16000))  # noqa: E731
    samples = np.concatenate([quiet(1.0), rng.normal(0.0, 0.3, int(0.6 * 16000)), quiet(1.0)])
    sf.write(str(path), np.clip(samples, -1, 1), 16000, subtype="PCM_16")
    return path


def run_listen_with_mqtt(tmp_path: Path, model: Path, port: int, *flags: str) -> subprocess.CompletedProcess:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "models": [{"path": str(model)}],
                "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX, "qos": 1},
            }
        )
    )
    clip = loud_burst_wav(tmp_path / "burst.wav")
    return subprocess.run(
        [sys.executable, "-m", "wakeword.cli", "listen", "--config", str(config), "--input", str(clip)]
        + list(flags),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_listen_publishes_its_detection_to_the_broker(broker, loud_model_path, tmp_path):
    sub = Subscriber(broker.port)
    try:
        result = run_listen_with_mqtt(tmp_path, loud_model_path, broker.port)
        assert result.returncode == 0, result.stderr
        event = json.loads(sub.next(f"{PREFIX}/detection").payload)
        status = sub.next(f"{PREFIX}/status")
        while status.payload == b"online":
            status = sub.next(f"{PREFIX}/status")
    finally:
        sub.close()
    assert event["wake_word"] == "loud" and event["host"] == socket.gethostname()
    assert status.payload == b"offline"  # the daemon said goodbye on the way out


def test_listen_with_the_broker_down_still_detects_and_exits_cleanly(loud_model_path, tmp_path):
    # Nothing listens on that port; --no-realtime: the whole file goes through in a moment.
    result = run_listen_with_mqtt(tmp_path, loud_model_path, free_port(), "--no-realtime")
    assert result.returncode == 0, result.stderr
    assert "loud" in result.stdout
    assert "Traceback" not in result.stderr
    assert "1 queued detection(s) not published" in result.stderr  # lost, but not silently


def test_without_paho_the_publisher_says_what_to_install():
    code = (
        "import sys; sys.modules['paho'] = None\n"
        "from wakeword.config import MqttSettings\n"
        "from wakeword.errors import WakewordError\n"
        "from wakeword.mqtt import MqttPublisher\n"
        "try:\n"
        "    MqttPublisher(MqttSettings(host='127.0.0.1'))\n"
        "except WakewordError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=GUARD_S
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'wakeword[integrations]'" in result.stdout
