"""GATT frames -> readings for the ingest pipeline.

A BLE frame's channel is ``<device id>/<16-bit UUID>`` (``cuff-1/2A35``) and its payload the
characteristic value exactly as the device sent it, so quarantine keeps the real bytes.
"""

from __future__ import annotations

from device_adapters.ble.context import BleContext, ClockBook
from device_adapters.ble.registry import characteristic_for
from device_adapters.errors import DecodeError, ReasonCode
from device_adapters.readings import DEVICE_ID_PATTERN, FrameDecode, RawFrame

SOURCE = "ble"


def channel_for(device_id: str, uuid16: int) -> str:
    return f"{device_id}/{uuid16:04X}"


class BleFrameDecoder:
    def __init__(self, clocks: ClockBook) -> None:
        self._clocks = clocks

    def device_id(self, frame: RawFrame) -> str:
        device_id, _, _ = frame.channel.partition("/")
        if not DEVICE_ID_PATTERN.fullmatch(device_id):
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"BLE channel {frame.channel!r} does not start with a device id")
        return device_id

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        characteristic = characteristic_for(frame.channel.partition("/")[2])
        parsed = characteristic.parse(frame.payload)
        if characteristic.to_readings is None:
            return FrameDecode(())  # features, time, control points, intermediate values: nothing to store
        context = BleContext(device_id, frame.received_at, self._clocks.get(device_id))
        return FrameDecode(tuple(characteristic.to_readings(parsed, context)))
