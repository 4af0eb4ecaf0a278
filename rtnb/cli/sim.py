"""``rtnb sim``: simulated devices publishing to a hub or, like real devices, to an MQTT broker.

::

    rtnb sim --url http://127.0.0.1:8765 --topic 'plant/+/temp'
    rtnb sim --mqtt mqtt://127.0.0.1:1883 --topic 'plant/+/temp' --device boiler --device pump

Each device publishes ``{"value", "unit", "setpoint", "on"}`` ``--rate`` times
a second and obeys commands on ``<prefix>/<device>/cmd`` (see :mod:`rtnb.sim`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ..core.errors import RtnbError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run simulated devices",
        description="Run simulated IoT devices until Ctrl-C (or --duration), publishing to a hub or an MQTT broker.",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", default=None, help="hub URL (default: $RTNB_URL or http://127.0.0.1:8765)")
    target.add_argument("--mqtt", metavar="URL", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883: devices talk MQTT")
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="PATTERN",
        help="topic with a '+' where the device name goes (repeatable; default: plant/+/temp)",
    )
    parser.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="NAME",
        help="device name (repeatable; default: boiler, turbine, pump)",
    )
    parser.add_argument(
        "--rate", type=float, default=10.0, help="readings per second per device and topic (default: 10)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible values")
    parser.add_argument("--token", default=None, help="token for a hub with --auth jwt (default: $RTNB_TOKEN)")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    parser.add_argument("--mqtt-qos", type=int, default=1, choices=(0, 1, 2), help="MQTT QoS (default: 1)")
    parser.add_argument("--mqtt-username", metavar="NAME", help="MQTT user name")
    parser.add_argument("--mqtt-password", metavar="SECRET", help="MQTT password (or set $RTNB_MQTT_PASSWORD)")
    parser.add_argument("--mqtt-ca", metavar="FILE", help="CA bundle (PEM) to verify the broker's TLS certificate")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import sim

    options: dict[str, Any] = {}
    if args.mqtt:
        target = args.mqtt
        if "://" not in target:
            target = f"mqtt://{target}"
        password = args.mqtt_password if args.mqtt_password is not None else os.environ.get("RTNB_MQTT_PASSWORD")
        options = {"qos": args.mqtt_qos, "username": args.mqtt_username, "password": password, "ca_file": args.mqtt_ca}
    else:
        target = args.url or os.environ.get("RTNB_URL") or "http://127.0.0.1:8765"
        token = args.token or os.environ.get("RTNB_TOKEN")
        if token:
            options = {"token": token}
    topics = args.topic or ["plant/+/temp"]
    devices = args.device or list(sim.DEFAULT_DEVICES)
    try:
        simulation = sim.sensors(target, topics, devices=devices, rate=args.rate, seed=args.seed, **options)
    except RtnbError as error:
        print(f"rtnb sim: {error.message}", file=sys.stderr)
        return 2
    print(
        f"rtnb sim: {len(devices)} device(s) on {target}, topics {topics}, commands on "
        f"{simulation.model.command_topics} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while simulation.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    stopped_early = not simulation.running
    simulation.stop()
    print(f"rtnb sim: published {simulation.published} reading(s)", file=sys.stderr, flush=True)
    if stopped_early:
        print("rtnb sim: the devices stopped early (see the warning above)", file=sys.stderr)
        return 1
    return 0
