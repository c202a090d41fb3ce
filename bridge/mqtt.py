"""``python -m bridge.mqtt``: subscribe to MQTT topics and publish what arrives to Pulseboard channels.

    PULSE_MQTT_ROUTES='sensors/+/+=data:sensors.{1}' python -m bridge.mqtt

Routes and payloads are described in ``bridge.routes``. The MQTT side is Eclipse paho: the bridge
subscribes with QoS 1 and paho reconnects by itself (1 s, doubling to 30 s), resubscribing on every
connect. The gateway side is the ``pulseboard`` client package: what arrives within
``PULSE_MQTT_FLUSH_INTERVAL`` goes as one batch per channel over ``POST /api/publish``, each batch with
an idempotency key it keeps until the gateway answers, so a retry after a lost answer publishes nothing
twice; while the gateway is unreachable, batches wait (up to ``PULSE_MQTT_BACKLOG`` points per channel)
and are retried with backoff.

Logged: the routes at start, each topic's channel and series the first time the topic is seen, a topic
that no route takes or whose payload is not a point (once per topic), and every connect and disconnect.
"""

import argparse
import logging
import queue
import signal
import sys
import threading
import time
from types import FrameType
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.routes import Route, RouteError, parse_routes, point_of
from bridge.settings import BridgeSettings, get_settings
from pulseboard.gateway_api import Failed, GatewayAPI, Published, Rejected
from pulseboard.outbox import Outbox
from shared.api import MAX_BATCH
from shared.backoff import Backoff
from shared.channels import Channel
from shared.payloads import DataPoint

log = logging.getLogger("bridge.mqtt")


class Bridge:
    def __init__(self, settings: BridgeSettings, routes: list[Route], api: GatewayAPI) -> None:
        self._settings = settings
        self._routes = routes
        self._api = api
        self._arrived: queue.SimpleQueue[tuple[Channel, DataPoint]] = queue.SimpleQueue()
        self._outboxes: dict[Channel, Outbox] = {}
        self._seen: set[str] = set()
        self._backoff = Backoff()
        self.published = 0
        self.dropped = 0
        self.stopping = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    # --- the MQTT side (paho's network thread) ---------------------------------------------------

    def start(self) -> None:
        url = urlsplit(self._settings.mqtt_url)
        if url.scheme not in ("mqtt", "mqtts"):
            raise RouteError(f"PULSE_MQTT_URL={self._settings.mqtt_url!r}: use mqtt://host:port or mqtts://")
        if url.username:
            self.client.username_pw_set(url.username, url.password)
        if url.scheme == "mqtts":
            self.client.tls_set()
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        for route in self._routes:
            log.info("route: %s -> %s", route.pattern, route.channel)
        self.client.connect_async(url.hostname or "127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("the MQTT broker refused the connection: %s", reason)
            return
        client.subscribe([(route.pattern, 1) for route in self._routes])
        log.info("connected to %s; subscribed to %d filter(s)", self._settings.mqtt_url, len(self._routes))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not self.stopping.is_set():
            log.warning("lost the MQTT broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        channel = next((found for route in self._routes if (found := route.channel_for(topic))), None)
        point = None if channel is None else point_of(topic, message.payload)
        if channel is None or point is None:
            if topic not in self._seen:
                self._seen.add(topic)
                why = (
                    "no route takes it"
                    if channel is None
                    else "its payload is not a number or JSON of numbers"
                )
                log.warning("%s: dropped (%s); repeats are not logged", topic, why)
            self.dropped += 1
            return
        if topic not in self._seen:
            self._seen.add(topic)
            log.info("%s -> %s, series %s", topic, channel, ", ".join(point.values))
        self._arrived.put((channel, point))

    # --- the gateway side (the main thread) ------------------------------------------------------

    def run(self) -> None:
        """Publish what arrives until ``stopping`` is set, then what is left once."""
        while not self.stopping.wait(self._settings.mqtt_flush_interval):
            self._collect()
            self._send_all()
        self.client.disconnect()
        self.client.loop_stop()
        self._collect()
        self._send_all()

    def _collect(self) -> None:
        while True:
            try:
                channel, point = self._arrived.get_nowait()
            except queue.Empty:
                return
            outbox = self._outboxes.get(channel)
            if outbox is None:
                outbox = self._outboxes[channel] = Outbox(
                    channel,
                    batch_size=MAX_BATCH,
                    limit=self._settings.mqtt_backlog,
                    wait_for_full_batch=False,
                )
            self.dropped += outbox.add(point)

    def _send_all(self) -> None:
        if not self._backoff.ready(time.monotonic()):
            return
        for outbox in self._outboxes.values():
            while (batch := outbox.next_batch(flush=True)) is not None:
                outcome = self._api.publish(outbox.channel, batch, idempotency_key=outbox.key)
                if isinstance(outcome, Failed):
                    if not self._backoff.in_outage:
                        log.warning(
                            "cannot publish to the gateway (%s); retrying with backoff", outcome.reason
                        )
                    self._backoff.failed(time.monotonic())
                    return
                outage = self._backoff.succeeded(time.monotonic())
                if outage is not None:
                    log.info("the gateway answers again after %.1f s", outage)
                if isinstance(outcome, Rejected):
                    log.error(
                        "the gateway refused %d point(s) for %s: %s",
                        len(batch),
                        outbox.channel,
                        outcome.detail,
                    )
                    self.dropped += len(batch)
                elif isinstance(outcome, Published):
                    self.published += len(outcome.offsets)
                outbox.answered()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.mqtt", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     [%(name)s] %(message)s")
    settings = get_settings()
    try:
        routes = parse_routes(settings.mqtt_routes)
    except RouteError as exc:
        print(f"python -m bridge.mqtt: PULSE_MQTT_ROUTES: {exc}", file=sys.stderr)
        return 2
    token = settings.token.get_secret_value() if settings.token else None
    with GatewayAPI(settings.gateway_url, token) as api:
        bridge = Bridge(settings, routes, api)

        def stop(signum: int, frame: FrameType | None) -> None:
            bridge.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            bridge.start()
        except RouteError as exc:
            print(f"python -m bridge.mqtt: {exc}", file=sys.stderr)
            return 2
        bridge.run()
    log.info("stopped: %d point(s) published, %d dropped", bridge.published, bridge.dropped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
