"""Publish detections to an MQTT broker (optional; needs the ``integrations`` extra).

A detection sink for the live loop: ``handle(detection)`` never blocks and never
raises because the broker is away. paho's network thread connects in the
background (``connect_async`` + ``loop_start``) and reconnects with back-off;
detections that happen while it is offline wait in a bounded queue and are
published, in order, once the broker is back. What the queue cannot hold is
dropped and counted in the log, never lost silently.

Topics, under ``<prefix>`` (default ``wakeword/<hostname>``):
    ``<prefix>/detection``  JSON ``{"wake_word", "score", "time", "host"}``
    ``<prefix>/status``     retained ``online``; ``offline`` on clean close or,
                            as the last will, when the process dies
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
from collections import Counter, deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from wakeword.errors import ConfigError, WakewordError

try:  # the `integrations` extra; `listen` must work without it when MQTT is off
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
except ImportError as exc:  # pragma: no cover - depends on the install
    paho = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

if TYPE_CHECKING:
    from wakeword.config import MqttSettings
    from wakeword.detector import Detection

log = logging.getLogger(__name__)

#: Live publishers per (broker, status topic) in this process. A config reload builds the new
#: publisher before closing the old one; the old one must not then say "offline" for both.
_live: Counter[tuple[str, str]] = Counter()
_live_lock = threading.Lock()
_instances = itertools.count(1)
#: Longest wait between two reconnection attempts. paho's default backoff (up to 30 s here before)
#: left a broker that came back after a one-minute outage unused for up to 30 s (chaos soak,
#: issue 19); one refused TCP connect every 3 s costs nothing.
RECONNECT_MAX_S = 3

ONLINE = "online"
OFFLINE = "offline"


def default_prefix(hostname: str | None = None) -> str:
    """``wakeword/<hostname>``: one subtree per machine, so several daemons share a broker."""
    return f"wakeword/{hostname or socket.gethostname()}"


def detection_payload(detection: Detection, host: str, when: datetime | None = None) -> bytes:
    """The JSON message for one detection; ``time`` is wall-clock UTC, ISO 8601."""
    when = when or datetime.now(UTC)
    return json.dumps(
        {
            "wake_word": detection.wake_word,
            "score": round(float(detection.score), 4),
            "time": when.isoformat(timespec="milliseconds"),
            "host": host,
        }
    ).encode()


class MqttPublisher:
    """Detection sink that publishes to MQTT; safe to call from any thread.

    ``handle()`` and ``close()`` are the sink interface the listen loop uses.
    """

    def __init__(self, settings: MqttSettings, *, hostname: str | None = None) -> None:
        if paho is None:
            raise WakewordError(
                f"mqtt: paho-mqtt is not installed ({_IMPORT_ERROR}); "
                "install it with: pip install 'wakeword[integrations]'"
            )
        self.host = hostname or socket.gethostname()
        prefix = (settings.topic_prefix or default_prefix(self.host)).rstrip("/")
        if not prefix or "+" in prefix or "#" in prefix:
            raise ConfigError(f"mqtt.topic_prefix {settings.topic_prefix!r}: must be a topic without + or #")
        self.detection_topic = f"{prefix}/detection"
        self.status_topic = f"{prefix}/status"
        self.broker = f"{'mqtts' if settings.tls else 'mqtt'}://{settings.host}:{settings.port}"
        self._qos = settings.qos
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._queue_size = settings.queue_size
        self._dropped = 0
        self._connected = False
        self._became_connected = threading.Event()
        self._closed = False
        self._warned_queueing = False  # once per outage, not once per detection
        self._warned_unreachable = False

        # Unique per instance: a broker drops the older of two connections with the same id.
        client_id = settings.client_id or f"wakeword-{self.host}-{os.getpid()}-{next(_instances)}"
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.will_set(self.status_topic, OFFLINE, qos=self._qos, retain=True)
        if settings.username:  # the password may come from an env var: config resolves password_env
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            files = {
                "ca_file": settings.tls_ca_certs,
                "certfile": settings.tls_certfile,
                "keyfile": settings.tls_keyfile,
            }
            for key, path in files.items():
                if path and not os.path.isfile(path):
                    raise ConfigError(f"mqtt.tls.{key}: {path}: file not found")
            try:
                client.tls_set(
                    ca_certs=_path_or_none(settings.tls_ca_certs),
                    certfile=_path_or_none(settings.tls_certfile),
                    keyfile=_path_or_none(settings.tls_keyfile),
                )
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise ConfigError(f"mqtt.tls: cannot use the certificate files: {exc}") from exc
            client.tls_insecure_set(settings.tls_insecure)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        # Neither call touches the network: the first connect happens in paho's thread.
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
        self._key = (self.broker, self.status_topic)
        with _live_lock:
            _live[self._key] += 1
        client.loop_start()
        log.info("publishing to %s on %s", self.detection_topic, self.broker)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def dropped(self) -> int:
        """Detections dropped because the offline queue was full (since the last reconnect)."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Detections waiting for the broker."""
        return len(self._pending)

    def handle(self, detection: Detection) -> None:
        """Publish one detection now, or queue it until the broker is reachable. Never blocks."""
        payload = detection_payload(detection, self.host)
        with self._lock:
            if self._closed:
                log.debug("publisher closed, detection not published")
                return
            if self._connected:
                info = self._client.publish(self.detection_topic, payload, qos=self._qos)
                # QoS >= 1 stays in paho's own store and is re-sent after a reconnect;
                # a QoS 0 message refused for want of a connection waits with the rest.
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or self._qos > 0:
                    return
            self._enqueue(payload)

    def take_pending(self) -> list[bytes]:
        """Hand over the detections queued while the broker was away (a SIGHUP reload passes them
        to the new publisher, so closing this one during an outage loses none)."""
        with self._lock:
            payloads = list(self._pending)
            self._pending.clear()
        return payloads

    def adopt(self, payloads: list[bytes]) -> None:
        """Publish (or queue, oldest first) detections another publisher had queued."""
        if not payloads:
            return
        with self._lock:
            if self._closed:
                log.warning("%d queued detection(s) not published: publisher closed", len(payloads))
                return
            for payload in payloads:
                if self._connected:
                    info = self._client.publish(self.detection_topic, payload, qos=self._qos)
                    if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or self._qos > 0:
                        continue
                self._enqueue(payload)

    def close(self, timeout_s: float = 2.0) -> None:
        """Say ``offline`` (retained), disconnect and stop the network thread.

        Detections still queued get up to ``timeout_s`` for the broker to (re)connect,
        so the last ones before a shutdown are not lost to a connection in progress.
        """
        if self._pending and not self._closed:
            self._became_connected.wait(timeout_s)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with _live_lock:
                _live[self._key] -= 1
                last = _live[self._key] <= 0
                if last:
                    del _live[self._key]
            info = None
            if self._connected and last:
                # Sent after everything published before it: confirming it confirms them.
                info = self._client.publish(self.status_topic, OFFLINE, qos=self._qos, retain=True)
            lost = len(self._pending)
            self._pending.clear()
        if info is not None:
            try:
                info.wait_for_publish(timeout=timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.debug("offline status not confirmed: %s", exc)
        if lost:
            log.warning("%d queued detection(s) not published: broker %s unreachable", lost, self.broker)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _enqueue(self, payload: bytes) -> None:
        if not self._warned_queueing:
            log.warning(
                "broker %s unreachable; queueing detections (up to %d)", self.broker, self._queue_size
            )
            self._warned_queueing = True
        if self._queue_size <= 0:
            self._dropped += 1
            return
        if len(self._pending) >= self._queue_size:
            self._pending.popleft()  # keep the newest: they matter most when it comes back
            self._dropped += 1
        self._pending.append(payload)

    # -- paho callbacks (paho's network thread) ------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            # Bad credentials and the like: paho keeps retrying, the log says why (once per outage).
            level = logging.DEBUG if self._warned_unreachable else logging.WARNING
            log.log(level, "broker %s refused the connection: %s", self.broker, reason_code)
            self._warned_unreachable = True
            return
        with self._lock:
            client.publish(self.status_topic, ONLINE, qos=self._qos, retain=True)
            delivered = len(self._pending)
            while self._pending:
                client.publish(self.detection_topic, self._pending.popleft(), qos=self._qos)
            dropped, self._dropped = self._dropped, 0
            self._connected = True
            self._warned_queueing = self._warned_unreachable = False
        self._became_connected.set()
        log.info("connected to %s", self.broker)
        if delivered:
            log.info("published %d detection(s) queued while offline", delivered)
        if dropped:
            log.warning("%d detection(s) dropped while offline (queue_size %d)", dropped, self._queue_size)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        # No lock here: paho may hold its own locks while calling this, and handle()
        # holds ours while calling into paho. A stale True only hands paho a message
        # that it keeps (QoS >= 1) and re-sends after the reconnect.
        was_connected, self._connected = self._connected, False
        self._became_connected.clear()
        if was_connected and not self._closed:
            log.warning(
                "lost connection to %s (%s); reconnecting in the background", self.broker, reason_code
            )

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if not self._warned_unreachable:
            log.warning("cannot connect to %s; retrying in the background", self.broker)
            self._warned_unreachable = True
        else:
            log.debug("cannot connect to %s; retrying", self.broker)


def _path_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)
