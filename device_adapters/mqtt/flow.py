"""Stop reading from the broker while too many messages wait for their acknowledgement.

MQTT 5's receive maximum should make the broker stop at that many unacknowledged messages, and
the Mosquitto here (2.0.11) does while nothing is acknowledged — but once acknowledgements flow
it lets the count grow by about 1.4 per PUBACK (measured: receive maximum 100, a consumer
acknowledging 50 every 50 ms held 3,800 unacknowledged). A gateway that falls behind then reads
the whole backlog into memory. So the client enforces the bound itself: past ``pause_at``
messages received and not acknowledged it stops reading the socket (TCP pushes back, the broker
keeps the rest queued), and reads again once acknowledgements bring the count to ``resume_at``.
With :mod:`device_adapters.mqtt.buffered_reads` the rest of a chunk already read waits as well,
so the count stops at ``pause_at`` exactly (one connection's packet at a time).

aiomqtt reads in a callback it registers on the event loop and exposes no pause; like
:mod:`device_adapters.mqtt.manual_ack`, this module reaches into it, and
``tests/test_mqtt_flow.py`` fails if a future aiomqtt or paho breaks it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt

from device_adapters.mqtt.buffered_reads import BufferedReadClient


class ReadPause:
    """Counts messages received and acknowledged on one client; pauses and resumes its socket reads."""

    def __init__(self, client: aiomqtt.Client, *, pause_at: int, resume_at: int, armed: bool = True) -> None:
        self._client = client
        self._paho = client._client  # noqa: SLF001 - aiomqtt exposes no read pause
        self._pause_at, self._resume_at = pause_at, resume_at
        self.unacknowledged = 0
        self.paused = False
        self.pauses = 0
        self.armed = armed
        delivered = self._paho.on_message
        if delivered is None:
            raise RuntimeError("aiomqtt no longer sets paho's on_message: device_adapters/mqtt/flow.py needs updating")

        def on_message(paho: Any, userdata: Any, message: Any) -> None:  # noqa: ANN401 - paho's callback signature
            delivered(paho, userdata, message)
            if message.qos > 0:
                self.unacknowledged += 1
                self._pause_if_full()

        self._paho.on_message = on_message

    def arm(self) -> None:
        """Start pausing: call once the connection's SUBACKs are in.

        A persistent session's backlog arrives before the SUBACK; paused there, the SUBACK would
        wait behind messages nobody consumes yet. Until then a broker that honours the receive
        maximum sends no more than it (nothing has been acknowledged for it to overshoot on).
        """
        self.armed = True
        self._pause_if_full()

    def acknowledged(self) -> None:
        self.unacknowledged -= 1
        if self.paused and self.unacknowledged <= self._resume_at:
            self._resume()

    def _pause_if_full(self) -> None:
        if self.armed and self.unacknowledged >= self._pause_at and not self.paused:
            self._pause()

    def _fileno(self) -> int | None:
        sock = self._paho.socket()
        return None if sock is None or sock.fileno() < 0 else sock.fileno()

    def _pause(self) -> None:
        fileno = self._fileno()
        if fileno is not None:
            asyncio.get_running_loop().remove_reader(fileno)
            self.paused = True
            self.pauses += 1
            if isinstance(self._paho, BufferedReadClient):
                self._paho.reads_held = True  # the rest of its chunk waits too

    def _resume(self) -> None:
        self.paused = False
        fileno = self._fileno()
        if fileno is not None:  # a closed connection is not read again: the source reconnects
            loop = asyncio.get_running_loop()
            loop.add_reader(fileno, self._read)
            if isinstance(self._paho, BufferedReadClient):
                self._paho.reads_held = False
                if self._paho.buffered():  # already off the socket: no readable event will come for it
                    loop.call_soon(self._read)

    def _read(self) -> None:
        # What aiomqtt's own reader does: a failed read ends the connection, which the message
        # iterator then reports as an MqttError.
        try:
            self._paho.loop_read()
        except Exception as exc:  # noqa: BLE001 - handed to aiomqtt, which raises it as MqttError
            disconnected = self._client._disconnected  # noqa: SLF001 - see the module docstring
            if not disconnected.done():
                disconnected.set_exception(exc)
