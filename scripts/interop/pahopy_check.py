#!/usr/bin/env python3
"""Python paho-mqtt peer for scripts/interop.sh.

Two modes:

  check    connect, subscribe, publish at QoS 0, 1 and 2 and a retained
           message, verifying that every message arrives with the payload and
           QoS it was sent with. Prints one line per check:
               PASS <name>/<check>
               FAIL <name>/<check>: <why>
           and exits 1 when any check failed.
  publish  publish one message and wait until the broker acknowledged it
           (PUBACK / PUBCOMP); used by the cross-library checks.

Every wait is bounded by --timeout, so a broker that never answers turns
into FAIL lines, not a hang.
"""

import argparse
import queue
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode


class Failed(Exception):
    """A check's expectation was not met; the text says what happened."""


class Peer:
    """One paho client running its network loop on a background thread.

    Callbacks run on paho's thread and only hand results over through
    threading.Event and queue.Queue, so the checking thread never touches
    client internals.
    """

    def __init__(self, args, client_id):
        self.args = args
        self.client_id = client_id
        self.v5 = args.protocol == "5"
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            # MQTT 5 has no clean_session argument; clean start is given to
            # connect() instead.
            clean_session=None if self.v5 else True,
        )
        self.connected = threading.Event()
        self.connect_rc = None
        self.session_present = None
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connect_rc = reason_code
        self.session_present = flags.session_present
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subacks.put((mid, [rc.value for rc in reason_codes]))

    def _on_message(self, client, userdata, msg):
        self.messages.put((msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

    def connect(self):
        kwargs = {"keepalive": 30}
        if self.v5:
            kwargs["clean_start"] = True
        rc = self.client.connect(self.args.host, self.args.port, **kwargs)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise Failed(f"client {self.client_id}: connect() returned {rc}")
        self.client.loop_start()
        if not self.connected.wait(self.args.timeout):
            raise Failed(f"client {self.client_id}: no CONNACK within {self.args.timeout}s")
        if self.connect_rc.is_failure:
            raise Failed(f"client {self.client_id}: CONNACK refused: {self.connect_rc} "
                         f"(0x{self.connect_rc.value:02x})")
        if self.session_present:
            raise Failed(f"client {self.client_id}: CONNACK session present=1 for a clean session")

    def subscribe(self, topic_filter, qos):
        rc, mid = self.client.subscribe(topic_filter, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise Failed(f"subscribe({topic_filter}) returned {rc}")
        try:
            got_mid, codes = self.subacks.get(timeout=self.args.timeout)
        except queue.Empty:
            raise Failed(f"no SUBACK for {topic_filter} within {self.args.timeout}s") from None
        if got_mid != mid:
            raise Failed(f"SUBACK packet id {got_mid}, want {mid}")
        if codes != [qos]:
            raise Failed(f"SUBACK for {topic_filter} granted {codes}, want [{qos}]")

    def publish(self, topic, payload, qos, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise Failed(f"publish({topic}) returned {info.rc}")
        # For QoS 1/2 this returns once PUBACK / PUBCOMP arrived; for QoS 0
        # once the packet was written.
        try:
            info.wait_for_publish(self.args.timeout)
        except (ValueError, RuntimeError) as exc:
            raise Failed(f"publish({topic}, qos {qos}) failed: {exc}") from None
        if not info.is_published():
            what = {0: "was not sent", 1: "got no PUBACK", 2: "got no PUBREC/PUBCOMP"}[qos]
            raise Failed(f"publish({topic}, qos {qos}) {what} within {self.args.timeout}s")

    def expect(self, topic, payload, qos, retain):
        """Wait for the next message on topic and compare every field."""
        deadline = time.monotonic() + self.args.timeout
        others = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                extra = f" (other messages: {others})" if others else ""
                raise Failed(f"no message on {topic} within {self.args.timeout}s{extra}")
            try:
                got = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if got[0] != topic:
                others.append(got[0])
                continue
            _, got_payload, got_qos, got_retain = got
            problems = []
            if got_payload != payload:
                problems.append(f"payload {got_payload!r}, want {payload!r}")
            if got_qos != qos:
                problems.append(f"qos {got_qos}, want {qos}")
            if got_retain != retain:
                problems.append(f"retain {int(got_retain)}, want {int(retain)}")
            if problems:
                raise Failed(f"message on {topic}: " + "; ".join(problems))
            return

    def expect_none(self, topic, wait):
        """Fail if a message on topic arrives within wait seconds."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                got = self.messages.get(timeout=left)
            except queue.Empty:
                return
            if got[0] == topic:
                raise Failed(f"unexpected message on {topic}: payload {got[1]!r} retain {int(got[3])}")

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def run_checks(args):
    name = args.name
    run = args.run_id
    prefix = args.prefix
    results = []
    peers = []

    def check(label, fn):
        try:
            fn()
        except Failed as exc:
            results.append(False)
            print(f"FAIL {name}/{label}: {exc}", flush=True)
            return False
        except Exception as exc:  # a client library error is a failure too
            results.append(False)
            print(f"FAIL {name}/{label}: {type(exc).__name__}: {exc}", flush=True)
            return False
        results.append(True)
        print(f"PASS {name}/{label}", flush=True)
        return True

    def new_peer(role):
        peer = Peer(args, f"{args.client_prefix}-{role}")
        peers.append(peer)
        return peer

    try:
        sub = new_peer("sub")
        pub = new_peer("pub")

        def connect_both():
            sub.connect()
            pub.connect()

        if not check("connect", connect_both):
            return results
        if not check("subscribe", lambda: sub.subscribe(f"{prefix}/+", 2)):
            return results

        for qos in (0, 1, 2):
            topic = f"{prefix}/qos{qos}"
            payload = f"{name} {run} qos {qos}".encode()

            def one(topic=topic, payload=payload, qos=qos):
                pub.publish(topic, payload, qos)
                # The subscription is QoS 2, so the message keeps its QoS.
                sub.expect(topic, payload, qos, retain=False)

            check(f"qos{qos}", one)

        retained_topic = f"{prefix}/retained"
        retained_payload = f"{name} {run} retained".encode()

        def retained():
            pub.publish(retained_topic, retained_payload, 1, retain=True)
            # The live subscriber gets it with retain=0 [MQTT-3.3.1-9] ...
            sub.expect(retained_topic, retained_payload, 1, retain=False)
            late = new_peer("late")
            late.connect()
            late.subscribe(retained_topic, 2)
            # ... a new subscriber gets the stored copy with retain=1
            # [MQTT-3.3.1-8], at the QoS it was published with.
            late.expect(retained_topic, retained_payload, 1, retain=True)

        if check("retained", retained):
            def retained_clear():
                # An empty retained payload deletes the stored message
                # [MQTT-3.3.1-10], so the next subscriber sees nothing.
                pub.publish(retained_topic, b"", 1, retain=True)
                sub.expect(retained_topic, b"", 1, retain=False)
                later = new_peer("later")
                later.connect()
                later.subscribe(retained_topic, 2)
                later.expect_none(retained_topic, 0.5)

            check("retained-clear", retained_clear)
    finally:
        for peer in peers:
            try:
                peer.close()
            except Exception:
                pass
    return results


def run_publish(args):
    peer = Peer(args, f"{args.client_prefix}-pub")
    try:
        peer.connect()
        peer.publish(args.topic, args.payload.encode(), args.qos)
    except Failed as exc:
        print(f"{args.name}: publish failed: {exc}", file=sys.stderr)
        return 1
    finally:
        peer.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("check", "publish"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--protocol", choices=("3.1.1", "5"), required=True)
    p.add_argument("--name", required=True, help="check name prefix in PASS/FAIL lines")
    p.add_argument("--client-prefix", required=True, help="client IDs start with this")
    p.add_argument("--prefix", help="topic prefix (check mode)")
    p.add_argument("--run-id", default=str(int(time.time())), help="makes payloads unique")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds for each wait")
    p.add_argument("--topic", help="publish mode: topic")
    p.add_argument("--payload", help="publish mode: payload")
    p.add_argument("--qos", type=int, choices=(0, 1, 2), default=1, help="publish mode: QoS")
    args = p.parse_args()

    if args.mode == "publish":
        if args.topic is None or args.payload is None:
            p.error("publish needs --topic and --payload")
        return run_publish(args)
    if not args.prefix:
        p.error("check needs --prefix")
    results = run_checks(args)
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
