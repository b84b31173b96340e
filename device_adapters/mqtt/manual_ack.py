"""Acknowledge MQTT QoS 1 messages only after they are stored.

aiomqtt 2.x PUBACKs a QoS 1 message as soon as it arrives, which loses it if the gateway dies
before the database commit. paho-mqtt (under aiomqtt) can defer the PUBACK; aiomqtt does not
expose it, so this module reaches into ``Client._client`` — the one place that does.
``tests/test_mqtt_manual_ack.py`` fails if a future aiomqtt or paho breaks this.
"""

from __future__ import annotations

import aiomqtt


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """Call before connecting: from then on only :func:`acknowledge` sends PUBACKs."""
    client._client.manual_ack_set(on=True)  # noqa: SLF001 - aiomqtt exposes no manual-ack API


def acknowledge(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Send the PUBACK for message ``mid`` (nothing to send for QoS 0)."""
    if qos > 0:
        client._client.ack(mid, qos)  # noqa: SLF001 - see the module docstring
