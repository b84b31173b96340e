"""BLE advertisements: the frame format, BTHome v2 (plain, encrypted, replays), Theengs, FHIR, fuzzing.

BTHome vectors are bthome-ble's own test vectors (``tests/test_parser_v2.py``): mass in kg and
lb, the Shelly BLU H&T Display ZB, and the encrypted Shelly BLU H&T with its bind key. Further
encrypted advertisements are built with AES-CCM as the BTHome v2 specification says, by a
builder checked against that encrypted vector first.
"""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType

import pytest
from bthome_ble import BTHomeBluetoothDeviceData
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.ble.advertisements import (
    BTHOME_UUID,
    SOURCE,
    Advertisement,
    AdvertisementFrameDecoder,
    bind_key_from_hex,
    channel_for,
    encode_advertisement,
    frame_of,
    parse_advertisement,
    theengs_requests,
)
from device_adapters.errors import ConfigError, DecodeError, ReasonCode
from device_adapters.readings import FrameDecode, Quantity, RawFrame, Reading
from tests.ble_support import observations

RECEIVED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SHELLY_MAC = "54:48:E6:8F:80:A5"
SHELLY_ENCRYPTED = bytes.fromhex("41a47266c95f730011223378237214")  # temperature 25.06 °C, humidity 50.55 %
TEST_MAC = "A4:C1:38:8D:18:B2"
MASS_KG = bytes.fromhex("40065e1f")  # 80.3 kg
MASS_LB = bytes.fromhex("40073e1d")  # 74.86 lb
DISPLAY_ZB = bytes.fromhex("40002e01641e012e34451601")  # packet 46, battery 100 %, humidity 52 %, 27.8 °C
BODY_SCALE_UUID = "0000181b-0000-1000-8000-00805f9b34fb"
AMBIENT_UUID = "0000181a-0000-1000-8000-00805f9b34fb"


def bthome(data: bytes, *, address: str = TEST_MAC, name: str | None = "TEST DEVICE") -> Advertisement:
    return Advertisement(address, name, -60, {BTHOME_UUID: data})


def encrypted(plaintext: bytes, counter: int, *, key: bytes = KEY, mac: str = SHELLY_MAC, info: int = 0x41) -> bytes:
    """BTHome v2 encryption: AES-CCM, 4-octet MIC, nonce = MAC | UUID fcd2 (LE) | device info | counter."""
    counter_octets = counter.to_bytes(4, "little")
    nonce = bytes.fromhex(mac.replace(":", "")) + b"\xd2\xfc" + bytes([info]) + counter_octets
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, plaintext, None)
    return bytes([info]) + sealed[:-4] + counter_octets + sealed[-4:]


def decode(
    decoder: AdvertisementFrameDecoder, device_id: str, advertisement: Advertisement, at: datetime = RECEIVED
) -> FrameDecode:
    frame = frame_of(device_id, advertisement, at)
    assert decoder.device_id(frame) == device_id
    return decoder.decode(frame, device_id)


def quantities(result: FrameDecode) -> list[tuple[str, Quantity | None]]:
    return [(reading.kind, reading.quantity) for reading in result.readings]


def rejected(
    decoder: AdvertisementFrameDecoder, device_id: str, advertisement: Advertisement, at: datetime = RECEIVED
) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(decoder, device_id, advertisement, at)
    return caught.value


# --- the frame format ------------------------------------------------------------------------


FULL = Advertisement(
    "5C:CA:D3:00:00:01",
    "MIBFS",
    -67,
    {BODY_SCALE_UUID: bytes.fromhex("0226e607020e10293af7019a38"), BTHOME_UUID: b""},
    {0x0157: bytes.fromhex("381ec781c63c"), 76: b""},
    (BODY_SCALE_UUID,),
)
MIBFS = Advertisement(
    "5C:CA:D3:00:00:01",
    "MIBFS",
    -67,
    {BODY_SCALE_UUID: bytes.fromhex("0226e607020e10293af7019a38")},
    {0x0157: bytes.fromhex("381ec781c63c")},
)


def test_encode_parse_round_trip() -> None:
    payload = encode_advertisement(FULL)
    assert json.loads(payload) == {
        "address": "5C:CA:D3:00:00:01",
        "name": "MIBFS",
        "rssi": -67,
        "service_data": {BODY_SCALE_UUID: "0226e607020e10293af7019a38", BTHOME_UUID: ""},
        "manufacturer_data": {"343": "381ec781c63c", "76": ""},
        "service_uuids": [BODY_SCALE_UUID],
    }
    assert parse_advertisement(payload) == FULL
    assert parse_advertisement(encode_advertisement(Advertisement(TEST_MAC, None, -127))) == Advertisement(TEST_MAC, None, -127)


def test_frames_carry_the_advertisement() -> None:
    frame = frame_of("scale-1", FULL, RECEIVED)
    assert (frame.source, frame.channel, frame.received_at) == (SOURCE, "scale-1/adv", RECEIVED)
    assert channel_for("scale-1") == "scale-1/adv"
    assert parse_advertisement(frame.payload) == FULL


def test_advertisements_are_immutable_copies() -> None:
    data = bytearray(b"\x40\x06\x5e\x1f")
    advertisement = Advertisement(TEST_MAC, None, -60, {BTHOME_UUID: data})  # type: ignore[dict-item]  # bleak may hand over bytearray
    data[1] = 0
    assert advertisement.service_data[BTHOME_UUID] == MASS_KG
    with pytest.raises(TypeError):
        advertisement.service_data[BTHOME_UUID] = b""  # type: ignore[index]  # read-only on purpose
    assert hash(advertisement.service_uuids) == hash(())


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        (b"\xff", ReasonCode.MALFORMED_JSON, "payload is not UTF-8"),
        (b"{", ReasonCode.MALFORMED_JSON, "invalid JSON"),
        (b"[]", ReasonCode.MALFORMED_FRAME, "an advertisement must be a JSON object"),
        (
            b'{"address":"A4:C1:38:8D:18:B2"}',
            ReasonCode.MALFORMED_FRAME,
            "advertisement keys: missing ['manufacturer_data', 'name'",
        ),
        (b"x" * 8193, ReasonCode.OVERSIZE, "advertisement is 8193 bytes, the limit is 8192"),
    ],
)
def test_bad_payloads(payload: bytes, reason: ReasonCode, detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_advertisement(payload)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def _payload(**changes: object) -> bytes:
    document: dict[str, object] = {
        "address": TEST_MAC,
        "name": "TEST DEVICE",
        "rssi": -60,
        "service_data": {BTHOME_UUID: "40065e1f"},
        "manufacturer_data": {"76": "0215"},
        "service_uuids": [],
    }
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"extra": 1}, "unexpected ['extra']"),
        ({"rssi": -60.0}, "rssi must be an integer"),
        ({"rssi": True}, "rssi must be an integer"),
        ({"rssi": "-60"}, "rssi must be an integer"),
        ({"rssi": -128}, "rssi must be an integer from -127 to 20 dBm"),
        ({"address": "not a mac"}, "address must be a MAC address or a peripheral UUID"),
        ({"address": 5}, "address must be a string"),
        ({"name": 5}, "name must be a string"),
        ({"name": "\ud800"}, "name must be null or text of at most 248 UTF-8 octets"),
        ({"name": "é" * 125}, "name must be null or text of at most 248 UTF-8 octets"),
        ({"service_data": {BTHOME_UUID: "40065E1F"}}, "must be lower-case hex of whole octets"),
        ({"service_data": {BTHOME_UUID: "40065e1"}}, "must be lower-case hex of whole octets"),
        ({"service_data": {BTHOME_UUID: 1}}, "must be lower-case hex of whole octets"),
        ({"service_data": {"fcd2": "40"}}, "service data UUID must be a lower-case 128-bit UUID"),
        ({"service_data": {BTHOME_UUID.upper(): "40"}}, "service data UUID must be a lower-case 128-bit UUID"),
        ({"service_data": []}, "service_data must be an object"),
        ({"manufacturer_data": {"076": "00"}}, "key '076' is not a company id"),
        ({"manufacturer_data": {"65536": "00"}}, "company id must be 0..65535"),
        ({"manufacturer_data": {"0x4c": "00"}}, "is not a company id"),
        ({"service_uuids": "fcd2"}, "service_uuids must be an array"),
        ({"service_uuids": [1]}, "service_uuids[] must be a string"),
        ({"service_uuids": ["fcd2"]}, "service UUID must be a lower-case 128-bit UUID"),
    ],
)
def test_parse_is_strict(changes: dict[str, object], detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_advertisement(_payload(**changes))
    assert caught.value.reason == ReasonCode.MALFORMED_FRAME
    assert detail in caught.value.detail
    assert parse_advertisement(_payload()) == Advertisement(
        TEST_MAC, "TEST DEVICE", -60, {BTHOME_UUID: MASS_KG}, {76: b"\x02\x15"}
    )


def test_a_core_bluetooth_peripheral_uuid_is_an_address() -> None:
    advertisement = Advertisement("5732A8DA-27AF-1C19-DA77-C8EF5AD5CB28", "MIBFS", -67)
    assert parse_advertisement(encode_advertisement(advertisement)) == advertisement


# --- BTHome v2, unencrypted ------------------------------------------------------------------


def test_mass_in_kilograms_keeps_its_resolution() -> None:
    result = decode(AdvertisementFrameDecoder({}), "scale-9", bthome(MASS_KG))
    assert result.readings == (Reading("scale-9", "body_weight", RECEIVED, Quantity(Decimal("80.30"), "kg")),)
    assert repr(result.readings[0].quantity) == repr(Quantity(Decimal("80.30"), "kg"))
    [resource] = observations(list(result.readings))
    assert resource["code"]["coding"][0]["code"] == "29463-7"
    assert resource["valueQuantity"]["code"] == "kg"


def test_mass_in_pounds() -> None:
    result = decode(AdvertisementFrameDecoder({}), "scale-9", bthome(MASS_LB))
    assert quantities(result) == [("body_weight", Quantity(Decimal("74.86"), "[lb_av]"))]
    [resource] = observations(list(result.readings))
    assert resource["valueQuantity"]["code"] == "kg"


def test_battery_and_ambient_values_of_a_plain_sensor() -> None:
    result = decode(AdvertisementFrameDecoder({}), "ht-9", bthome(DISPLAY_ZB, name="SBHT-103C"))
    assert quantities(result) == [("battery_level", Quantity(Decimal(100), "%"))]  # humidity, temperature, packet id ignored
    [resource] = observations(list(result.readings))
    assert resource["valueQuantity"]["code"] == "%"


def test_temperature_is_a_body_temperature_only_for_a_configured_body_thermometer() -> None:
    decoder = AdvertisementFrameDecoder({}, frozenset({"thermo-1"}))
    result = decode(decoder, "thermo-1", bthome(DISPLAY_ZB, name="SBHT-103C"))
    assert quantities(result) == [
        ("battery_level", Quantity(Decimal(100), "%")),
        ("body_temperature", Quantity(Decimal("27.8"), "Cel")),
    ]
    assert [reading.index for reading in result.readings] == [0, 1]
    _, temperature = observations(list(result.readings))
    assert temperature["code"]["coding"][0]["code"] == "8310-5"
    assert quantities(decode(decoder, "other", bthome(DISPLAY_ZB, name="SBHT-103C"))) == [
        ("battery_level", Quantity(Decimal(100), "%"))
    ]


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "BTHome service data is empty"),
        (bytes.fromhex("e102000c0404138a01"), "BTHome version 7 is not supported (device info 0xE1)"),
        (bytes.fromhex("02065e1f"), "BTHome version 0 is not supported (device info 0x02)"),
    ],
)
def test_bthome_header_problems(data: bytes, detail: str) -> None:
    assert rejected(AdvertisementFrameDecoder({}), "dev-1", bthome(data)).detail == detail


def test_unknown_objects_yield_nothing() -> None:
    assert decode(AdvertisementFrameDecoder({}), "dev-1", bthome(bytes.fromhex("40ff0102"))) == FrameDecode(())


# --- BTHome v2, encrypted --------------------------------------------------------------------


def test_the_encryption_builder_reproduces_bthome_bles_vector() -> None:
    assert encrypted(bytes.fromhex("02ca0903bf13"), int.from_bytes(bytes.fromhex("00112233"), "little")) == SHELLY_ENCRYPTED


def test_encrypted_advertisement_with_the_right_key() -> None:
    decoder = AdvertisementFrameDecoder({"ht-1": KEY}, frozenset({"ht-1"}))
    result = decode(decoder, "ht-1", bthome(SHELLY_ENCRYPTED, address=SHELLY_MAC, name="SBHT-003C"))
    assert quantities(result) == [("body_temperature", Quantity(Decimal("25.06"), "Cel"))]
    assert decoder.last_counter("ht-1") == int.from_bytes(bytes.fromhex("00112233"), "little")
    observations(list(result.readings))


def test_wrong_bind_key() -> None:
    decoder = AdvertisementFrameDecoder({"ht-1": bytes.fromhex("814aac74c4f17b6c1581e1ab87816b99")})
    error = rejected(decoder, "ht-1", bthome(SHELLY_ENCRYPTED, address=SHELLY_MAC))
    assert error.reason == ReasonCode.MALFORMED_FRAME
    assert error.detail == (
        "BTHome advertisement from 'ht-1' does not decrypt with its bind key (wrong key, wrong device address, or corrupted)"
    )
    assert decoder.last_counter("ht-1") is None


def test_a_different_address_breaks_the_nonce() -> None:
    decoder = AdvertisementFrameDecoder({"ht-1": KEY})
    assert "does not decrypt" in rejected(decoder, "ht-1", bthome(SHELLY_ENCRYPTED, address=TEST_MAC)).detail


def test_encrypted_without_a_bind_key() -> None:
    error = rejected(AdvertisementFrameDecoder({}), "ht-1", bthome(SHELLY_ENCRYPTED, address=SHELLY_MAC))
    assert error.detail == "encrypted BTHome advertisement, but no bind key is configured for 'ht-1'"


def test_plain_advertisement_from_a_device_with_a_bind_key_is_a_downgrade() -> None:
    error = rejected(AdvertisementFrameDecoder({"scale-9": KEY}), "scale-9", bthome(MASS_KG))
    assert "encryption downgrade" in error.detail


def test_encrypted_advertisement_too_short_or_without_a_mac() -> None:
    decoder = AdvertisementFrameDecoder({"ht-1": KEY})
    short = rejected(decoder, "ht-1", bthome(SHELLY_ENCRYPTED[:10], address=SHELLY_MAC))
    assert short.detail == "encrypted BTHome advertisement is 10 octets, need at least 11"
    core_bluetooth = bthome(SHELLY_ENCRYPTED, address="5732A8DA-27AF-1C19-DA77-C8EF5AD5CB28")
    assert "needs the device MAC address for its nonce" in rejected(decoder, "ht-1", core_bluetooth).detail


def test_the_mac_may_travel_in_the_advertisement() -> None:
    """Device info bit 1: the MAC (reversed) follows the device info octet, and the nonce uses it."""
    info = 0x43
    sealed = encrypted(bytes.fromhex("065e1f"), 7, info=info)
    data = bytes([info]) + bytes.fromhex(SHELLY_MAC.replace(":", ""))[::-1] + sealed[1:]
    decoder = AdvertisementFrameDecoder({"scale-1": KEY})
    result = decode(decoder, "scale-1", bthome(data, address="5732A8DA-27AF-1C19-DA77-C8EF5AD5CB28"))
    assert quantities(result) == [("body_weight", Quantity(Decimal("80.30"), "kg"))]


# --- replay protection -----------------------------------------------------------------------


def test_bthome_ble_alone_does_not_stop_replays() -> None:
    """The finding behind our own counter check: bthome-ble accepts an old packet again."""
    parser = BTHomeBluetoothDeviceData(bindkey=KEY)
    first = decode_with_bthome_ble(parser, encrypted(bytes.fromhex("065e1f"), 50))
    newer = decode_with_bthome_ble(parser, encrypted(bytes.fromhex("06ba1f"), 150))
    replayed = decode_with_bthome_ble(parser, encrypted(bytes.fromhex("065e1f"), 50))
    assert (first, newer, replayed) == (80.3, 81.22, 80.3)  # counter below 100 taken for a restart
    assert decode_with_bthome_ble(parser, encrypted(bytes.fromhex("06ba1f"), 150)) == 81.22  # equal counter accepted


def decode_with_bthome_ble(parser: BTHomeBluetoothDeviceData, data: bytes) -> object:
    from device_adapters.ble.advertisements import _service_info  # noqa: PLC0415 - the exact input our decoder gives it

    update = parser.update(_service_info(bthome(data, address=SHELLY_MAC), data, RECEIVED))
    return next(value.native_value for key, value in update.entity_values.items() if key.key == "mass")


def test_counters_must_increase() -> None:
    decoder = AdvertisementFrameDecoder({"scale-1": KEY}, dedup_window=None)
    at_10 = bthome(encrypted(bytes.fromhex("065e1f"), 10), address=SHELLY_MAC)
    at_11 = bthome(encrypted(bytes.fromhex("06ba1f"), 11), address=SHELLY_MAC)
    assert quantities(decode(decoder, "scale-1", at_10)) == [("body_weight", Quantity(Decimal("80.30"), "kg"))]
    assert quantities(decode(decoder, "scale-1", at_11)) == [("body_weight", Quantity(Decimal("81.22"), "kg"))]
    assert decoder.last_counter("scale-1") == 11

    later = RECEIVED + timedelta(minutes=1)
    error = rejected(decoder, "scale-1", at_10, later)
    assert error.reason == ReasonCode.MALFORMED_FRAME
    assert error.detail == "BTHome replay refused: counter 10 from 'scale-1' is not greater than the last accepted 11"
    # The same counter with other contents: a reused nonce, refused too.
    reused = bthome(encrypted(bytes.fromhex("065e1f"), 11), address=SHELLY_MAC)
    assert (
        "counter 11 from 'scale-1' is not greater than the last accepted 11" in rejected(decoder, "scale-1", reused, later).detail
    )
    # An exact copy of the last accepted advertisement (devices and gateways repeat them): nothing new, no error.
    assert decode(decoder, "scale-1", at_11, later) == FrameDecode(())
    assert decoder.last_counter("scale-1") == 11


def test_counters_are_kept_per_device() -> None:
    decoder = AdvertisementFrameDecoder({"scale-1": KEY, "scale-2": KEY}, dedup_window=None)
    decode(decoder, "scale-1", bthome(encrypted(bytes.fromhex("065e1f"), 500), address=SHELLY_MAC))
    result = decode(decoder, "scale-2", bthome(encrypted(bytes.fromhex("065e1f"), 5), address=SHELLY_MAC))
    assert len(result.readings) == 1
    assert (decoder.last_counter("scale-1"), decoder.last_counter("scale-2")) == (500, 5)


def test_forged_advertisements_do_not_move_the_counter() -> None:
    decoder = AdvertisementFrameDecoder({"scale-1": KEY}, dedup_window=None)
    decode(decoder, "scale-1", bthome(encrypted(bytes.fromhex("065e1f"), 10), address=SHELLY_MAC))
    forged = bthome(encrypted(bytes.fromhex("065e1f"), 0xFFFFFFFF, key=bytes(16)), address=SHELLY_MAC)
    assert "does not decrypt" in rejected(decoder, "scale-1", forged).detail
    assert decoder.last_counter("scale-1") == 10
    assert len(decode(decoder, "scale-1", bthome(encrypted(bytes.fromhex("06ba1f"), 11), address=SHELLY_MAC)).readings) == 1


def test_reset_counter_after_a_device_restart() -> None:
    decoder = AdvertisementFrameDecoder({"scale-1": KEY}, dedup_window=None)
    decode(decoder, "scale-1", bthome(encrypted(bytes.fromhex("065e1f"), 1000), address=SHELLY_MAC))
    restarted = bthome(encrypted(bytes.fromhex("06ba1f"), 1), address=SHELLY_MAC)
    rejected(decoder, "scale-1", restarted)
    decoder.reset_counter("scale-1")
    assert len(decode(decoder, "scale-1", restarted).readings) == 1
    assert decoder.last_counter("scale-1") == 1


def test_an_accepted_advertisement_without_health_values_still_moves_the_counter() -> None:
    decoder = AdvertisementFrameDecoder({"ht-1": KEY})
    assert decode(decoder, "ht-1", bthome(SHELLY_ENCRYPTED, address=SHELLY_MAC)) == FrameDecode(())  # not a thermometer
    assert decoder.last_counter("ht-1") == int.from_bytes(bytes.fromhex("00112233"), "little")
    assert "replay refused" in rejected(decoder, "ht-1", bthome(encrypted(bytes.fromhex("0164"), 5), address=SHELLY_MAC)).detail


def test_decoding_a_batch_again_gives_the_same_answers() -> None:
    """The pipeline decodes a batch again when storing it failed: no replay refusal, no lost repeat."""
    decoder = AdvertisementFrameDecoder({"scale-1": KEY})
    batch = [
        frame_of("scale-1", bthome(encrypted(bytes.fromhex("065e1f"), 10), address=SHELLY_MAC), RECEIVED),
        frame_of("scale-1", bthome(encrypted(bytes.fromhex("065e1f"), 10), address=SHELLY_MAC), RECEIVED + timedelta(seconds=1)),
        frame_of("scale-1", bthome(encrypted(bytes.fromhex("06ba1f"), 11), address=SHELLY_MAC), RECEIVED + timedelta(seconds=2)),
        frame_of("scale-1", bthome(encrypted(bytes.fromhex("06ba1f"), 12), address=SHELLY_MAC), RECEIVED + timedelta(seconds=3)),
    ]
    first = [decoder.decode(frame, "scale-1") for frame in batch]
    assert [len(result.readings) for result in first] == [1, 0, 1, 0]  # a relayed copy; a repeated weight
    assert [decoder.decode(frame, "scale-1") for frame in batch] == first
    # A replay is still a replay: it is another frame (another reception time).
    replayed = frame_of(
        "scale-1", bthome(encrypted(bytes.fromhex("065e1f"), 10), address=SHELLY_MAC), RECEIVED + timedelta(hours=1)
    )
    with pytest.raises(DecodeError, match="replay refused"):
        decoder.decode(replayed, "scale-1")


# --- configuration ---------------------------------------------------------------------------


def test_bind_keys_are_checked() -> None:
    assert bind_key_from_hex("231D39C1D7CC1AB1AEE224CD096DB932") == KEY
    with pytest.raises(ConfigError, match="must be 16 octets, got 15"):
        bind_key_from_hex("231d39c1d7cc1ab1aee224cd096db9")
    with pytest.raises(ConfigError, match="32 hex digits"):
        bind_key_from_hex("not hex")
    with pytest.raises(ConfigError, match="a BTHome bind key is 16 octets"):
        AdvertisementFrameDecoder({"ht-1": KEY[:8]})
    with pytest.raises(ConfigError, match="is not a device id"):
        AdvertisementFrameDecoder({"ht/1": KEY})


@pytest.mark.parametrize("channel", ["ht-1", "ht-1/", "ht-1/2A9D", "/adv", "ht 1/adv", "ht-1/adv/x"])
def test_bad_channels(channel: str) -> None:
    frame = RawFrame(SOURCE, channel, encode_advertisement(bthome(MASS_KG)), RECEIVED)
    with pytest.raises(DecodeError, match="is not <device id>/adv"):
        AdvertisementFrameDecoder({}).device_id(frame)


# --- deduplication in the decoder ------------------------------------------------------------


def test_relayed_copies_are_dropped_within_the_window() -> None:
    decoder = AdvertisementFrameDecoder({})
    advertisement = bthome(MASS_KG)
    assert len(decode(decoder, "scale-9", advertisement).readings) == 1
    assert decode(decoder, "scale-9", advertisement, RECEIVED + timedelta(seconds=3)) == FrameDecode(())
    assert len(decode(decoder, "scale-9", advertisement, RECEIVED + timedelta(seconds=60)).readings) == 1
    undeduplicated = AdvertisementFrameDecoder({}, dedup_window=None)
    assert [len(decode(undeduplicated, "scale-9", advertisement).readings) for _ in range(3)] == [1, 1, 1]


# --- Theengs vendor advertisements -----------------------------------------------------------


def test_vendor_advertisement_through_theengs_decoder() -> None:
    result = decode(AdvertisementFrameDecoder({}), "scale-1", MIBFS)
    assert quantities(result) == [
        ("body_weight", Quantity(Decimal("72.45"), "kg")),
        ("body_impedance", Quantity(Decimal(503), "Ohm")),
    ]
    assert [reading.index for reading in result.readings] == [0, 1]
    assert [resource["code"]["coding"][0]["code"] for resource in observations(list(result.readings))] == [
        "29463-7",
        "body_impedance",
    ]


def test_theengs_requests_are_built_as_theengs_gateway_builds_them() -> None:
    assert theengs_requests(MIBFS) == [
        {
            "id": "5C:CA:D3:00:00:01",
            "rssi": -67,
            "name": "MIBFS",
            "manufacturerdata": "5701381ec781c63c",
            "servicedatauuid": "181b",
            "servicedata": "0226e607020e10293af7019a38",
        },
    ]
    two = Advertisement(TEST_MAC, None, -60, {BODY_SCALE_UUID: b"\x01", AMBIENT_UUID: b"\x02"})
    assert [request["servicedatauuid"] for request in theengs_requests(two)] == ["181b", "181a"]
    vendor_uuid = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
    only_manufacturer = Advertisement("A0:9E:1A:00:00:01", None, -70, {vendor_uuid: b"\x01"}, {0x006B: bytes.fromhex("072e1048")})
    assert theengs_requests(only_manufacturer) == [{"id": "A0:9E:1A:00:00:01", "rssi": -70, "manufacturerdata": "6b00072e1048"}]
    assert theengs_requests(Advertisement(TEST_MAC, None, -70)) == []


def test_heart_rate_strap_advertisement() -> None:
    polar = Advertisement("A0:9E:1A:00:00:01", "Polar H10 12345678", -70, manufacturer_data={0x006B: bytes.fromhex("072e1048")})
    assert quantities(decode(AdvertisementFrameDecoder({}), "strap-1", polar)) == [("heart_rate", Quantity(Decimal(72), "/min"))]


def test_ambient_vendor_sensor_stays_ambient_even_if_configured_as_thermometer() -> None:
    room = Advertisement("A4:C1:38:D5:D4:98", "ATC_D5D498", -60, {AMBIENT_UUID: bytes.fromhex("a4c138d5d49801453e510b7b62")})
    assert decode(AdvertisementFrameDecoder({}, frozenset({"room-1"})), "room-1", room) == FrameDecode(())


def test_unknown_vendor_advertisement_yields_nothing() -> None:
    unknown = Advertisement(TEST_MAC, None, -60, {AMBIENT_UUID: b"\x00\x01"}, {0xFFFF: b"\x00"})
    assert decode(AdvertisementFrameDecoder({}), "dev-1", unknown) == FrameDecode(())


def test_missing_theengs_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def without_theengs(name: str, package: str | None = None) -> ModuleType:
        if name == "TheengsDecoder":
            raise ModuleNotFoundError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_theengs)
    error = rejected(AdvertisementFrameDecoder({}), "scale-1", MIBFS)
    assert error.reason == ReasonCode.UNSUPPORTED_TYPE
    assert "`theengs` extra" in error.detail
    # BTHome does not need it.
    assert len(decode(AdvertisementFrameDecoder({}), "scale-9", bthome(MASS_KG)).readings) == 1


# --- fuzzing: only DecodeError escapes -------------------------------------------------------

_JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-300, 300), st.floats(allow_nan=False), st.text(max_size=20))
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "address": st.one_of(st.just(TEST_MAC), _JSON),
        "name": st.one_of(st.none(), st.text(max_size=10), _JSON),
        "rssi": st.one_of(st.integers(-200, 200), _JSON),
        "service_data": st.one_of(
            st.dictionaries(st.sampled_from([BTHOME_UUID, AMBIENT_UUID, "x"]), st.text("0123456789abcdefABCDEF", max_size=12)),
            _JSON,
        ),
        "manufacturer_data": st.one_of(
            st.dictionaries(st.text("0123456789", max_size=6), st.text("0123456789abcdef", max_size=8)), _JSON
        ),
        "service_uuids": st.one_of(st.lists(st.sampled_from([BTHOME_UUID, "fcd2"])), _JSON),
    },
)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        _FIELDS.map(lambda document: json.dumps(document).encode()),
        _JSON.map(lambda value: json.dumps(value).encode()),
    )
)
def test_fuzz_parse_advertisement(payload: bytes) -> None:
    try:
        advertisement = parse_advertisement(payload)
    except DecodeError:
        return
    assert parse_advertisement(encode_advertisement(advertisement)) == advertisement


_ADVERTISEMENTS = st.builds(
    Advertisement,
    address=st.from_regex(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}", fullmatch=True),
    name=st.one_of(st.none(), st.text(st.characters(codec="utf-8"), max_size=20)),
    rssi=st.integers(-127, 20),
    service_data=st.dictionaries(
        st.sampled_from([BTHOME_UUID, AMBIENT_UUID, BODY_SCALE_UUID]), st.binary(max_size=40), max_size=2
    ),
    manufacturer_data=st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=30), max_size=2),
    service_uuids=st.lists(st.sampled_from([BTHOME_UUID, AMBIENT_UUID]), max_size=2).map(tuple),
)


@settings(max_examples=2000, deadline=None)
@given(_ADVERTISEMENTS)
def test_fuzz_encode_parse_round_trip(advertisement: Advertisement) -> None:
    assert parse_advertisement(encode_advertisement(advertisement)) == advertisement


_FUZZ_DECODERS = (
    AdvertisementFrameDecoder({}),
    AdvertisementFrameDecoder({"dev-1": KEY}, frozenset({"dev-1"})),
    AdvertisementFrameDecoder({}, frozenset({"dev-1"}), dedup_window=None),
)


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(_FUZZ_DECODERS),
    st.one_of(
        st.binary(max_size=40),
        st.tuples(st.sampled_from([0x40, 0x41, 0x42, 0x43, 0x44, 0x45]), st.binary(max_size=30)).map(
            lambda t: bytes([t[0]]) + t[1]
        ),
        st.tuples(st.binary(min_size=1, max_size=12), st.integers(0, 0xFFFFFFFF)).map(lambda t: encrypted(t[0], t[1])),
    ),
    st.sampled_from([SHELLY_MAC, TEST_MAC]),
)
def test_fuzz_bthome_service_data(decoder: AdvertisementFrameDecoder, data: bytes, address: str) -> None:
    advertisement = bthome(data, address=address)
    decoder.reset_counter("dev-1")  # let every encrypted example reach the parser
    try:
        result = decode(decoder, "dev-1", advertisement)
    except DecodeError:
        return
    for reading in result.readings:
        assert reading.quantity is not None
        assert reading.quantity.value.is_finite()


@settings(max_examples=1500, deadline=None)
@given(_ADVERTISEMENTS)
def test_fuzz_decoder_with_any_advertisement(advertisement: Advertisement) -> None:
    try:
        decode(_FUZZ_DECODERS[2], "dev-1", advertisement)
    except DecodeError:
        return
