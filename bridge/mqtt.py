"""``python -m bridge.mqtt``: subscribe to MQTT topics and publish what arrives to Pulseboard channels.

    PULSE_MQTT_ROUTES='sensors/+/+=data:sensors.{1}' python -m bridge.mqtt

Routes and payloads are described in ``bridge.routes``. The MQTT side is Eclipse paho: the bridge
subscribes with QoS 1 and paho reconnects by itself (1 s, doubling to 30 s), resubscribing on every
connect. The gateway side is ``pulseboard.publisher.Publisher``, as any program would use it: paho's
thread hands each point to it, and what arrives within ``PULSE_MQTT_FLUSH_INTERVAL`` goes as one batch
per channel over ``POST /api/publish``, each batch with an idempotency key it keeps until the gateway
answers, so a retry after a lost answer publishes nothing twice; while the gateway is unreachable,
batches wait (up to ``PULSE_MQTT_BACKLOG`` points per channel) and are retried with backoff. On stop,
what is left gets ``STOP_GRACE`` seconds to reach the gateway.

Logged: the routes at start, each topic's channel and series the first time the topic is seen, a topic
that no route takes or whose payload is not a point (once per topic), every connect and disconnect, a
batch the gateway refuses, and (by the publisher) the gateway lost and back.
"""

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.routes import Route, RouteError, parse_routes, point_of
from bridge.settings import BridgeSettings, get_settings
from pulseboard.publisher import Publisher, Rejection

log = logging.getLogger("bridge.mqtt")

STOP_GRACE = 5.0
"""Seconds the points still queued at stop get to reach the gateway."""


class Bridge:
    def __init__(self, settings: BridgeSettings, routes: list[Route]) -> None:
        self._settings = settings
        self._routes = routes
        token = settings.token.get_secret_value() if settings.token else None
        self.publisher = Publisher(
            settings.gateway_url,
            token,
            linger=settings.mqtt_flush_interval,
            max_queue=settings.mqtt_backlog,
            on_rejected=self._on_rejected,
        )
        self._seen: set[str] = set()
        self.unroutable = 0
        """Messages no route takes or whose payload is not a point."""
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
            self.unroutable += 1
            return
        if topic not in self._seen:
            self._seen.add(topic)
            log.info("%s -> %s, series %s", topic, channel, ", ".join(point.values))
        self.publisher.publish(channel, point)

    # --- the gateway side (the publisher's thread) -----------------------------------------------

    def _on_rejected(self, rejection: Rejection) -> None:
        log.error(
            "the gateway refused %d point(s) for %s: %s",
            len(rejection.payloads),
            rejection.channel,
            rejection.detail,
        )

    def run(self) -> None:
        """Publish what arrives until ``stopping`` is set, then what is left for up to ``STOP_GRACE``."""
        self.stopping.wait()
        self.client.disconnect()
        self.client.loop_stop()
        self.publisher.close(STOP_GRACE)

    @property
    def dropped(self) -> int:
        """Messages not published: unroutable, refused, over the backlog, or unsent at stop."""
        stats = self.publisher.stats
        return self.unroutable + stats.rejected + stats.dropped


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
    bridge = Bridge(settings, routes)

    def stop(signum: int, frame: FrameType | None) -> None:
        bridge.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        bridge.start()
    except RouteError as exc:
        bridge.publisher.close(0)
        print(f"python -m bridge.mqtt: {exc}", file=sys.stderr)
        return 2
    bridge.run()
    log.info("stopped: %d point(s) published, %d dropped", bridge.publisher.stats.published, bridge.dropped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
