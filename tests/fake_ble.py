"""A fake Bluetooth peripheral behind bleak's own client interface.

There is no radio on these machines, so tests drive the real ``bleak.BleakClient`` with a custom
backend (``BleakClient(address, backend=FakeBleakBackend)``) whose GATT server is simulated
here: services, characteristics, reads, writes, notifications, indications and link loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bleak import BleakClient
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError

from device_adapters.ble.session import PairedDevice, sig_uuid

PERIPHERALS: dict[str, FakePeripheral] = {}


class FakePeripheral:
    """A GATT server: ``values`` are readable characteristics; the rest only notify/indicate or take writes."""

    def __init__(
        self,
        address: str,
        service: int,
        characteristics: dict[int, list[CharacteristicPropertyName]],
        values: dict[int, bytes] | None = None,
    ) -> None:
        self.address = address
        self.service = service
        self.characteristics = characteristics
        self.values = dict(values or {})
        self.subscriptions: dict[int, NotifyCallback] = {}
        self.writes: list[tuple[int, bytes]] = []
        self.backend: FakeBleakBackend | None = None
        self.refuse_connections = 0
        PERIPHERALS[address] = self

    @property
    def connected(self) -> bool:
        return self.backend is not None

    def notify(self, uuid16: int, data: bytes) -> None:
        callback = self.subscriptions.get(uuid16)
        if callback is not None and self.connected:
            callback(bytearray(data))

    def drop_link(self) -> None:
        """The radio link is lost: the central learns it through its disconnected callback."""
        backend, self.backend = self.backend, None
        self.subscriptions.clear()
        if backend is not None:
            backend.link_lost()

    async def on_write(self, uuid16: int, data: bytes) -> None:
        self.writes.append((uuid16, data))
        if uuid16 in self.values:
            self.values[uuid16] = data


class FakeBleakBackend(BaseBleakClient):
    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=kwargs.get("disconnected_callback"), timeout=kwargs.get("timeout", 10)
        )
        self._peripheral = PERIPHERALS[self.address]
        self._connected = False

    @property
    def mtu_size(self) -> int:
        return 247

    @property
    def name(self) -> str:
        return f"fake {self.address}"

    async def connect(self, pair: bool, **kwargs: Any) -> None:  # noqa: ARG002, FBT001 - bleak's backend signature
        await asyncio.sleep(0)
        if self._peripheral.refuse_connections:
            self._peripheral.refuse_connections -= 1
            raise BleakError(f"device {self.address} not found")
        services = BleakGATTServiceCollection()
        service = BleakGATTService(None, 1, sig_uuid(self._peripheral.service))
        services.add_service(service)
        for handle, (uuid16, properties) in enumerate(sorted(self._peripheral.characteristics.items()), start=2):
            services.add_characteristic(
                BleakGATTCharacteristic(uuid16, handle, sig_uuid(uuid16), properties, lambda: 20, service)
            )
        self.services = services
        self._connected = True
        self._peripheral.backend = self

    async def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            if self._peripheral.backend is self:
                self._peripheral.backend = None
                self._peripheral.subscriptions.clear()

    def link_lost(self) -> None:
        self._connected = False
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    async def unpair(self) -> None:
        raise NotImplementedError

    @property
    def is_connected(self) -> bool:
        return self._connected

    def _alive(self) -> None:
        if not self._connected:
            raise BleakError("not connected")

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:  # noqa: ARG002 - bleak's signature
        self._alive()
        return bytearray(self._peripheral.values[characteristic.obj])

    async def read_gatt_descriptor(self, descriptor: Any, **kwargs: Any) -> bytearray:
        raise NotImplementedError

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:  # noqa: ARG002, FBT001 - bleak's signature
        self._alive()
        await self._peripheral.on_write(characteristic.obj, bytes(data))

    async def write_gatt_descriptor(self, descriptor: Any, data: Any) -> None:
        raise NotImplementedError

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any) -> None:  # noqa: ARG002 - bleak passes platform options
        self._alive()
        self._peripheral.subscriptions[characteristic.obj] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._peripheral.subscriptions.pop(characteristic.obj, None)


async def connect_fake(device: PairedDevice, disconnected: Callable[[], None]) -> BleakClient:
    """The session manager's connector: the real BleakClient over the fake backend."""
    client = BleakClient(device.address, lambda _: disconnected(), backend=FakeBleakBackend)
    await client.connect()
    return client
