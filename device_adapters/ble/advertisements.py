"""BLE advertisements -> readings: BTHome v2 (bthome-ble) and vendor formats (TheengsDecoder).

An advertisement travels through the pipeline as a :class:`~device_adapters.readings.RawFrame`
from source ``ble-adv`` on channel ``<device id>/adv``; its payload is the advertisement as
JSON (:func:`encode_advertisement`), so quarantine keeps exactly what was heard.

BTHome v2 (service data UUID ``fcd2``) is tried first, through bthome-ble; anything else goes
to TheengsDecoder (the optional ``theengs`` extra) and :mod:`device_adapters.theengs`.

Replay protection (BTHome encryption)
-------------------------------------
bthome-ble does not enforce it for us: its ``BTHomeBluetoothDeviceData`` only skips an encrypted
advertisement whose counter is *smaller* than the last one, and only once the bind key has been
verified and when the new counter is at least 100 (a counter below 100 is taken for a device
restart); an *equal* counter is accepted, and the state lives in one parser object per device.
So :class:`AdvertisementFrameDecoder` keeps, per device, the counter and bytes of the last
encrypted advertisement it accepted, runs bthome-ble on a fresh parser every time, and:

* rejects (``DecodeError``) an encrypted advertisement whose counter is not greater than the
  last accepted one: an older packet replayed, or a reused nonce;
* drops silently (no readings, nothing quarantined) an exact copy of the last accepted
  advertisement: devices repeat each advertisement several times and gateways relay every
  copy, and a copy carries nothing new;
* records a counter only after the advertisement decrypted with the device's bind key.

A frame decoded again (the pipeline retries a batch whose store failed) gets its first answer
again (see :class:`AdvertisementFrameDecoder`). The state is in memory: after a restart the first
advertisement of each device is accepted, as bthome-ble does. A device whose counter restarted
(new battery) is rejected until :meth:`AdvertisementFrameDecoder.reset_counter` is called for it.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from bleak.backends.device import BLEDevice
from bthome_ble import BTHomeBluetoothDeviceData, SensorDeviceClass, SensorUpdate, Units
from habluetooth import BluetoothServiceInfoBleak

from device_adapters.errors import ConfigError, DecodeError, InputRejectedError, ReasonCode
from device_adapters.jsonwire import dumps, loads_strict
from device_adapters.readings import DEVICE_ID_PATTERN, FrameDecode, Quantity, RawFrame, Reading, require_aware
from device_adapters.theengs import DEFAULT_WINDOW, AdvertisementDeduplicator, readings_from_theengs

SOURCE = "ble-adv"
CHANNEL_SUFFIX = "adv"
BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
BIND_KEY_OCTETS = 16
MAX_PAYLOAD_BYTES = 8192
"""An encoded advertisement is far smaller (extended advertising data is at most 1650 octets)."""
MAX_NAME_LENGTH = 248
RECENT_FRAMES = 4096
"""Decoded frames remembered, so that decoding one of them again gives the same answer."""
MAX_COMPANY_ID = 0xFFFF
RSSI_RANGE = range(-127, 21)
"""dBm, as the HCI reports it."""

_UUID128 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SIG_BASE = re.compile(r"0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_ADDRESS = re.compile(rf"{_MAC.pattern}|[0-9A-Fa-f]{{8}}-[0-9A-Fa-f]{{4}}-[0-9A-Fa-f]{{4}}-[0-9A-Fa-f]{{4}}-[0-9A-Fa-f]{{12}}")
"""A MAC address, or the UUID CoreBluetooth gives a peripheral instead."""
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_COMPANY_ID = re.compile(r"0|[1-9][0-9]{0,4}")
_KEYS = ("address", "name", "rssi", "service_data", "manufacturer_data", "service_uuids")


def channel_for(device_id: str) -> str:
    return f"{device_id}/{CHANNEL_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One advertisement (with its scan response) as the scanner reported it."""

    address: str
    name: str | None
    rssi: int
    service_data: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    """128-bit service UUID (lower case, as bleak gives it) -> data."""
    manufacturer_data: Mapping[int, bytes] = field(default_factory=lambda: MappingProxyType({}))
    """Bluetooth SIG company identifier -> data (the identifier's two octets not included)."""
    service_uuids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not _ADDRESS.fullmatch(self.address):
            msg = f"address must be a MAC address or a peripheral UUID, got {self.address!r}"
            raise ValueError(msg)
        if self.name is not None and (not isinstance(self.name, str) or not _utf8(self.name, MAX_NAME_LENGTH)):
            msg = f"name must be null or text of at most {MAX_NAME_LENGTH} UTF-8 octets"
            raise ValueError(msg)
        if isinstance(self.rssi, bool) or not isinstance(self.rssi, int) or self.rssi not in RSSI_RANGE:
            msg = f"rssi must be an integer from {RSSI_RANGE.start} to {RSSI_RANGE.stop - 1} dBm, got {self.rssi!r}"
            raise ValueError(msg)
        service_data: dict[str, bytes] = {}
        for uuid, data in self.service_data.items():
            _require_uuid("service data UUID", uuid)
            service_data[uuid] = _require_bytes(f"service data {uuid}", data)
        manufacturer_data: dict[int, bytes] = {}
        for company, data in self.manufacturer_data.items():
            if isinstance(company, bool) or not isinstance(company, int) or not 0 <= company <= MAX_COMPANY_ID:
                msg = f"manufacturer data company id must be 0..{MAX_COMPANY_ID}, got {company!r}"
                raise ValueError(msg)
            manufacturer_data[company] = _require_bytes(f"manufacturer data {company}", data)
        uuids = tuple(self.service_uuids)
        for uuid in uuids:
            _require_uuid("service UUID", uuid)
        object.__setattr__(self, "service_data", MappingProxyType(service_data))
        object.__setattr__(self, "manufacturer_data", MappingProxyType(manufacturer_data))
        object.__setattr__(self, "service_uuids", uuids)


def _utf8(text: str, limit: int) -> bool:
    """True when ``text`` is valid Unicode (no lone surrogates) of at most ``limit`` octets in UTF-8."""
    try:
        return len(text.encode("utf-8")) <= limit
    except UnicodeEncodeError:
        return False


def _require_uuid(what: str, uuid: object) -> None:
    if not isinstance(uuid, str) or not _UUID128.fullmatch(uuid):
        msg = f"{what} must be a lower-case 128-bit UUID, got {uuid!r}"
        raise ValueError(msg)


def _require_bytes(what: str, data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        msg = f"{what} must be bytes, got {type(data).__name__}"
        raise TypeError(msg)
    return bytes(data)


def encode_advertisement(advertisement: Advertisement) -> bytes:
    """The advertisement as a frame payload: JSON, octets as lower-case hex."""
    return dumps({
        "address": advertisement.address,
        "name": advertisement.name,
        "rssi": advertisement.rssi,
        "service_data": {uuid: data.hex() for uuid, data in advertisement.service_data.items()},
        "manufacturer_data": {str(company): data.hex() for company, data in advertisement.manufacturer_data.items()},
        "service_uuids": list(advertisement.service_uuids),
    })  # fmt: skip


def parse_advertisement(payload: bytes) -> Advertisement:
    """The advertisement a frame payload carries; anything else is a :class:`DecodeError`.

    Strict: exactly the keys :func:`encode_advertisement` writes, integers written as integers,
    octets as lower-case hex of whole octets.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(ReasonCode.OVERSIZE, f"advertisement is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}")
    document = loads_strict(payload)
    if not isinstance(document, dict):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, "an advertisement must be a JSON object")
    if set(document) != set(_KEYS):
        missing = sorted(set(_KEYS) - set(document))
        extra = sorted(set(document) - set(_KEYS))
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement keys: missing {missing}, unexpected {extra}")
    try:
        return Advertisement(
            address=_string("address", document["address"]),
            name=None if document["name"] is None else _string("name", document["name"]),
            rssi=_integer("rssi", document["rssi"]),
            service_data={
                uuid: _octets(f"service_data.{uuid}", data) for uuid, data in _object("service_data", document).items()
            },
            manufacturer_data={
                _company(key): _octets(f"manufacturer_data.{key}", data)
                for key, data in _object("manufacturer_data", document).items()
            },
            service_uuids=tuple(_string("service_uuids[]", uuid) for uuid in _array("service_uuids", document)),
        )
    except (ValueError, TypeError) as exc:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement: {exc}") from exc


def _string(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement {what} must be a string")
    return value


def _integer(what: str, value: object) -> int:
    if not isinstance(value, Decimal) or value.as_tuple().exponent != 0:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement {what} must be an integer")
    return int(value)


def _object(what: str, document: Mapping[str, object]) -> dict[str, object]:
    value = document[what]
    if not isinstance(value, dict):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement {what} must be an object")
    return value


def _array(what: str, document: Mapping[str, object]) -> list[object]:
    value = document[what]
    if not isinstance(value, list):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement {what} must be an array")
    return value


def _octets(what: str, value: object) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement {what} must be lower-case hex of whole octets")
    return bytes.fromhex(value)


def _company(key: str) -> int:
    if not _COMPANY_ID.fullmatch(key):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement manufacturer_data key {key!r} is not a company id")
    return int(key)


# --- BTHome v2 ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BTHomeReading:
    """What one bthome-ble sensor (device class and unit) becomes."""

    kind: str
    unit: str
    step: Decimal | None
    """The object's resolution, to give the value its digits back (bthome-ble hands over a float);
    None where BTHome has objects of different resolutions for the same sensor (temperature)."""
    body_thermometer_only: bool = False


BTHOME_READINGS: Mapping[tuple[SensorDeviceClass, Units], BTHomeReading] = MappingProxyType({
    (SensorDeviceClass.MASS, Units.MASS_KILOGRAMS): BTHomeReading("body_weight", "kg", Decimal("0.01")),  # 0x06
    (SensorDeviceClass.MASS, Units.MASS_POUNDS): BTHomeReading("body_weight", "[lb_av]", Decimal("0.01")),  # 0x07
    (SensorDeviceClass.BATTERY, Units.PERCENTAGE): BTHomeReading("battery_level", "%", Decimal(1)),  # 0x01
    (SensorDeviceClass.TEMPERATURE, Units.TEMP_CELSIUS): BTHomeReading(  # 0x02, 0x45, 0x57, 0x58
        "body_temperature", "Cel", None, body_thermometer_only=True
    ),
})  # fmt: skip
"""bthome-ble sensor -> reading. BTHome v2 defines no heart rate, SpO2 or impedance object;
every other sensor (humidity, pressure, buttons…) is ignored. A temperature is a body
temperature only for a device configured as a body thermometer."""

_MAC_INCLUDED = 0x02
_ENCRYPTED = 0x01
_COUNTER_AND_MIC = 8
_MIN_ENCRYPTED_PAYLOAD = 2
"""bthome-ble's minimum for the ciphertext of a v2 advertisement (one object id and one octet)."""


@dataclass(frozen=True, slots=True)
class _Accepted:
    counter: int
    data: bytes


def bind_key_from_hex(text: str) -> bytes:
    """A bind key as configured (32 hex digits) -> its 16 octets; :class:`ConfigError` otherwise."""
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError(f"a BTHome bind key must be {2 * BIND_KEY_OCTETS} hex digits: {exc}") from exc
    if len(key) != BIND_KEY_OCTETS:
        raise ConfigError(f"a BTHome bind key must be {BIND_KEY_OCTETS} octets, got {len(key)}")
    return key


# --- TheengsDecoder -------------------------------------------------------------------------

THEENGS_MISSING = (
    "vendor advertisements are decoded by TheengsDecoder, which is not installed: install PulseBridge with the `theengs` extra"
)


def theengs_decode(request: Mapping[str, object]) -> dict[str, object] | None:
    """Run TheengsDecoder's ``decodeBLE`` on one request; its answer parsed with Decimals, or None.

    The decoder is an optional extra imported here, on first use; without it this raises
    :class:`DecodeError` (``unsupported_type``) saying so.
    """
    try:
        module = importlib.import_module("TheengsDecoder")
    except ImportError as exc:
        raise DecodeError(ReasonCode.UNSUPPORTED_TYPE, THEENGS_MISSING) from exc
    decode_ble: Callable[[str], object] = module.decodeBLE  # untyped C extension: its answer is checked below
    answer = decode_ble(json.dumps(request))
    if answer is None:
        return None
    if not isinstance(answer, str):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"TheengsDecoder answered {type(answer).__name__}, not JSON text")
    document = loads_strict(answer.encode())
    if not isinstance(document, dict):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, "TheengsDecoder answered JSON that is not an object")
    return document


def theengs_requests(advertisement: Advertisement) -> list[dict[str, object]]:
    """The ``decodeBLE`` inputs for an advertisement, built as Theengs Gateway builds them.

    The first manufacturer data (company id little-endian, then the data), the name, the address
    and RSSI; then one request per service data whose UUID is a 16-bit SIG UUID (the decoder
    knows only those), or a single request without service data when there is none.
    """
    base: dict[str, object] = {"id": advertisement.address, "rssi": advertisement.rssi}
    if advertisement.name:
        base["name"] = advertisement.name
    for company, data in advertisement.manufacturer_data.items():
        base["manufacturerdata"] = company.to_bytes(2, "little").hex() + data.hex()
        break
    requests = [
        {**base, "servicedatauuid": short.group(1), "servicedata": data.hex()}
        for uuid, data in advertisement.service_data.items()
        if (short := _SIG_BASE.fullmatch(uuid)) is not None
    ]
    if not requests and ("manufacturerdata" in base or "name" in base):
        requests.append(base)
    return requests


# --- the frame decoder ----------------------------------------------------------------------


class AdvertisementFrameDecoder:
    """Advertisement frames (``ble-adv``) -> readings, at the frame's reception time.

    ``bind_keys`` holds the 16-octet key of each device that encrypts its BTHome advertisements
    (such a device's unencrypted advertisements are refused); ``body_thermometers`` the devices
    whose BTHome temperature is a body temperature. Vendor formats decide that by their decoder
    model instead (:mod:`device_adapters.theengs`). Repeated copies of a reading are dropped by an
    :class:`~device_adapters.theengs.AdvertisementDeduplicator` over ``dedup_window`` (None: keep all).

    The replay counters and the deduplicator are state, and the pipeline decodes a batch again
    when storing it failed: so the answer for each of the last :data:`RECENT_FRAMES` frames
    decoded without error is remembered and given again for the same frame (device, reception
    time and payload), instead of being refused as a replay or dropped as a repeat of itself.
    Frames refused with an error change no state and are refused again.
    """

    def __init__(
        self,
        bind_keys: Mapping[str, bytes],
        body_thermometers: frozenset[str] = frozenset(),
        *,
        dedup_window: timedelta | None = DEFAULT_WINDOW,
    ) -> None:
        for device_id, key in bind_keys.items():
            if not DEVICE_ID_PATTERN.fullmatch(device_id):
                raise ConfigError(f"bind_keys: {device_id!r} is not a device id")
            if not isinstance(key, bytes) or len(key) != BIND_KEY_OCTETS:
                raise ConfigError(f"bind_keys.{device_id}: a BTHome bind key is {BIND_KEY_OCTETS} octets")
        self._bind_keys: Mapping[str, bytes] = MappingProxyType(dict(bind_keys))
        self._body_thermometers = frozenset(body_thermometers)
        self._accepted: dict[str, _Accepted] = {}
        self._dedup = AdvertisementDeduplicator(dedup_window) if dedup_window is not None else None
        self._recent: OrderedDict[tuple[str, datetime, bytes], FrameDecode] = OrderedDict()

    def device_id(self, frame: RawFrame) -> str:
        device_id, slash, rest = frame.channel.partition("/")
        if not slash or rest != CHANNEL_SUFFIX or not DEVICE_ID_PATTERN.fullmatch(device_id):
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"advertisement channel {frame.channel!r} is not <device id>/adv")
        return device_id

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        key = (device_id, frame.received_at, frame.payload)
        recent = self._recent.get(key)
        if recent is not None:  # the same frame again (a batch retried after a store failure)
            self._recent.move_to_end(key)
            return recent
        advertisement = parse_advertisement(frame.payload)
        if BTHOME_UUID in advertisement.service_data:
            decoded = self.decode_bthome(advertisement, device_id, frame.received_at)
        else:
            decoded = self.decode_theengs(advertisement, device_id, frame.received_at)
        if self._dedup is not None:
            decoded = FrameDecode(self._dedup.filter(device_id, decoded.readings, frame.received_at), decoded.rejections)
        self._recent[key] = decoded
        if len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return decoded

    def last_counter(self, device_id: str) -> int | None:
        """The counter of the last encrypted BTHome advertisement accepted from ``device_id``."""
        accepted = self._accepted.get(device_id)
        return None if accepted is None else accepted.counter

    def reset_counter(self, device_id: str) -> None:
        """Accept the next encrypted advertisement of ``device_id`` whatever its counter (device reset)."""
        self._accepted.pop(device_id, None)

    def decode_bthome(self, advertisement: Advertisement, device_id: str, received_at: datetime) -> FrameDecode:
        """The readings of a BTHome v2 advertisement (decrypted and replay-checked when encrypted)."""
        require_aware("received_at", received_at)
        data = advertisement.service_data[BTHOME_UUID]
        if not data:
            raise DecodeError(ReasonCode.MALFORMED_FRAME, "BTHome service data is empty")
        info = data[0]
        version = info >> 5 & 0x07
        if version != 2:  # noqa: PLR2004 - the BTHome version this decoder implements
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"BTHome version {version} is not supported (device info 0x{info:02X})")
        encrypted = bool(info & _ENCRYPTED)
        key = self._bind_keys.get(device_id)
        accepted: _Accepted | None = None
        if encrypted:
            if key is None:
                raise DecodeError(
                    ReasonCode.MALFORMED_FRAME, f"encrypted BTHome advertisement, but no bind key is configured for {device_id!r}"
                )
            accepted = self._check_encrypted(advertisement, device_id, data)
            if accepted is None:
                return FrameDecode(())  # an exact copy of the advertisement accepted last
        elif key is not None:
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME,
                f"unencrypted BTHome advertisement from {device_id!r}, which has a bind key: refused (encryption downgrade)",
            )

        parser = BTHomeBluetoothDeviceData(bindkey=key)
        update = parser.update(_service_info(advertisement, data, received_at))
        if encrypted and (parser.decryption_failed or not parser.bindkey_verified):
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME,
                f"BTHome advertisement from {device_id!r} does not decrypt with its bind key "
                "(wrong key, wrong device address, or corrupted)",
            )
        decoded = self._bthome_readings(update, device_id, received_at)
        if accepted is not None:
            self._accepted[device_id] = accepted
        return decoded

    def _check_encrypted(self, advertisement: Advertisement, device_id: str, data: bytes) -> _Accepted | None:
        header = 1 + (6 if data[0] & _MAC_INCLUDED else 0)
        if len(data) < header + _MIN_ENCRYPTED_PAYLOAD + _COUNTER_AND_MIC:
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME,
                f"encrypted BTHome advertisement is {len(data)} octets, "
                f"need at least {header + _MIN_ENCRYPTED_PAYLOAD + _COUNTER_AND_MIC}",
            )
        if not data[0] & _MAC_INCLUDED and not _MAC.fullmatch(advertisement.address):
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME,
                f"encrypted BTHome advertisement needs the device MAC address for its nonce, got {advertisement.address!r}",
            )
        counter = int.from_bytes(data[-_COUNTER_AND_MIC:-4], "little")
        last = self._accepted.get(device_id)
        if last is not None and counter <= last.counter:
            if counter == last.counter and data == last.data:
                return None
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME,
                f"BTHome replay refused: counter {counter} from {device_id!r} is not greater than "
                f"the last accepted {last.counter}",
            )
        return _Accepted(counter, data)

    def _bthome_readings(self, update: SensorUpdate, device_id: str, received_at: datetime) -> FrameDecode:
        thermometer = device_id in self._body_thermometers
        readings: list[Reading] = []
        rejections: list[tuple[int, InputRejectedError]] = []
        for key, value in update.entity_values.items():
            description = update.entity_descriptions.get(key)
            if description is None or description.device_class is None or description.native_unit_of_measurement is None:
                continue
            spec = BTHOME_READINGS.get((description.device_class, description.native_unit_of_measurement))
            if spec is None or (spec.body_thermometer_only and not thermometer):
                continue
            index = len(readings) + len(rejections)
            try:
                quantity = Quantity(_bthome_decimal(key.key, value.native_value, spec.step), spec.unit)
            except (DecodeError, ValueError) as exc:
                error = (
                    exc if isinstance(exc, DecodeError) else DecodeError(ReasonCode.MALFORMED_FRAME, f"BTHome {key.key}: {exc}")
                )
                rejections.append((index, error))
                continue
            readings.append(Reading(device_id, spec.kind, received_at, quantity, index=index))
        return FrameDecode(tuple(readings), tuple(rejections))

    def decode_theengs(self, advertisement: Advertisement, device_id: str, received_at: datetime) -> FrameDecode:
        """The readings TheengsDecoder finds in a vendor advertisement (none when it knows no format)."""
        readings: list[Reading] = []
        rejections: list[tuple[int, InputRejectedError]] = []
        next_index = 0
        for request in theengs_requests(advertisement):
            document = theengs_decode(request)
            if document is None:
                continue
            decoded = readings_from_theengs(document, device_id, received_at)
            readings.extend(replace(reading, index=reading.index + next_index) for reading in decoded.readings)
            rejections.extend((index + next_index, error) for index, error in decoded.rejections)
            used = [reading.index for reading in decoded.readings] + [index for index, _ in decoded.rejections]
            next_index += 1 + max(used, default=-1)
        return FrameDecode(tuple(readings), tuple(rejections))


def _bthome_decimal(name: str, value: object, step: Decimal | None) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"BTHome {name} is not a number: {value!r}")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"BTHome {name} is not a finite number: {value!r}")
    return number if step is None else number.quantize(step)


def _service_info(advertisement: Advertisement, data: bytes, received_at: datetime) -> BluetoothServiceInfoBleak:
    """What bthome-ble parses: only the BTHome service data, so it cannot pick another UUID."""
    name = advertisement.name or advertisement.address
    return BluetoothServiceInfoBleak(
        name=name,
        address=advertisement.address,
        rssi=advertisement.rssi,
        manufacturer_data=dict(advertisement.manufacturer_data),
        service_data={BTHOME_UUID: data},
        service_uuids=list(advertisement.service_uuids),
        source=SOURCE,
        device=BLEDevice(advertisement.address, advertisement.name, None),
        advertisement=None,
        connectable=False,
        time=received_at.timestamp(),
        tx_power=None,
    )


def frame_of(device_id: str, advertisement: Advertisement, received_at: datetime) -> RawFrame:
    """An advertisement as the frame a scanner hands to the pipeline."""
    return RawFrame(SOURCE, channel_for(device_id), encode_advertisement(advertisement), received_at)
