"""Read the broker's socket in large chunks instead of paho's three system calls per message.

paho-mqtt reads every packet with ``recv(1)`` for the command byte, ``recv(1)`` per byte of the
remaining length, then ``recv(n)`` for the body — and its ``loop_read`` handles about one packet
per readable event, so a stream of small QoS 1 readings costs an event-loop wake-up and three or
four system calls each (measured in ``bench/``: the receive path was half the gateway's CPU).
This keeps one chunk of up to ``READ_SIZE`` bytes per connection and serves paho's small reads
from it; ``loop_read`` then goes on until the chunk is used up, because the event loop will not
call it again for bytes already taken off the socket — and reads the socket again only while it
has handled fewer than ``PACKETS_PER_EVENT`` packets, so that a fast broker cannot keep the event
loop from the gateway's other work, yet large packs are not read one chunk per event.

Like :mod:`device_adapters.mqtt.manual_ack`, this reaches into the paho client under aiomqtt;
``tests/test_mqtt_buffered_reads.py`` fails if a future paho changes what it relies on
(``Client._sock_recv`` and ``Client.loop_read``).
"""

from __future__ import annotations

import aiomqtt
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.enums import MQTTErrorCode

READ_SIZE = 16 * 1024
# Within one readable event the socket is read again until this many packets were handled: a
# chunk holds a hundred small readings but only two packs of a hundred, and one chunk per event
# held packs back (bench/ingest.py: ~13,000 readings/s, ~15,700 with this).
PACKETS_PER_EVENT = 64


class BufferedReadClient(PahoClient):
    """paho's client with its socket reads served from one chunk at a time."""

    _chunk: bytes
    _chunk_at: int
    _chunk_socket: object  # only compared by identity with paho's socket
    _socket_read_allowed: bool
    _socket_dry: bool
    reads_held: bool
    """Set by :class:`device_adapters.mqtt.flow.ReadPause`: hand paho no more packets until cleared."""

    def _sock_recv(self, bufsize: int) -> bytes:
        at = self._chunk_at
        if at < len(self._chunk) and self._chunk_socket is self._sock:
            end = min(at + bufsize, len(self._chunk))
            self._chunk_at = end
            return self._chunk[at:end]
        if not self._socket_read_allowed:
            # One socket read per readable event: a broker sending faster than the gateway
            # handles must not keep this callback going for ever. The rest stays in the socket,
            # which the event loop reports readable again after the other tasks ran.
            raise BlockingIOError
        self._socket_read_allowed = False
        try:
            chunk = super()._sock_recv(max(bufsize, READ_SIZE))
        except BlockingIOError:  # the socket has nothing now; paho expects the error
            self._socket_dry = True
            raise
        if len(chunk) <= bufsize:
            self._chunk, self._chunk_at = b"", 0
            return chunk
        self._chunk, self._chunk_at, self._chunk_socket = chunk, bufsize, self._sock
        return chunk[:bufsize]

    def start_chunking(self) -> None:
        """The fields this class adds to a paho client it was swapped onto (no __init__ runs then)."""
        self._chunk, self._chunk_at, self._chunk_socket = b"", 0, None
        self._socket_read_allowed, self._socket_dry = True, False
        self.reads_held = False

    def buffered(self) -> int:
        """Bytes taken off the socket and not yet handed to paho."""
        return len(self._chunk) - self._chunk_at if self._chunk_socket is self._sock else 0

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # Every packet of the chunk read now is handled now: the event loop will not call this
        # again for bytes already taken off the socket. Past the chunk, the socket is read again
        # while fewer than PACKETS_PER_EVENT were handled and it still has bytes.
        self._socket_read_allowed, self._socket_dry = True, False
        calls = 1
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and not self.reads_held:
            if not self.buffered():
                if calls >= PACKETS_PER_EVENT or self._socket_dry:
                    break
                self._socket_read_allowed = True
            calls += 1
            rc = super().loop_read(max_packets)
        return rc


def enable_buffered_reads(client: aiomqtt.Client) -> None:
    """Call before connecting; every read of this client's connections goes through one chunk."""
    paho = client._client  # noqa: SLF001 - aiomqtt exposes no way to choose how paho reads
    if type(paho) is not PahoClient:
        raise TypeError(f"aiomqtt's paho client is {type(paho).__name__}: device_adapters/mqtt/buffered_reads.py needs updating")
    paho.__class__ = BufferedReadClient
    assert isinstance(paho, BufferedReadClient)  # noqa: S101 - narrows the type for mypy; cannot fail after the line above
    paho.start_chunking()
