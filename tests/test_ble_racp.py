"""Record Access Control Point: request encoders, request and response parsing, rejections, fuzzing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.ble.racp import (
    RacpFilterType,
    RacpNumberOfRecords,
    RacpOpCode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    RacpValue,
    abort_operation,
    delete_all_records,
    parse_record_access_control_point,
    report_all_records,
    report_number_of_all_records,
    report_records_from,
    report_records_in_range,
)
from tests.ble_support import fuzz, octets

REPORT, SEQUENCE = RacpOpCode.REPORT_STORED_RECORDS, RacpFilterType.SEQUENCE_NUMBER
ALL = RacpOperator.ALL_RECORDS


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("01 01", RacpRequest(1, REPORT, 1, ALL)),  # V-RACP-D1
        ("04 01", RacpRequest(4, RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, 1, ALL)),  # V-RACP-D2
        ("01 03 01 0A 00", RacpRequest(1, REPORT, 3, RacpOperator.GREATER_THAN_OR_EQUAL_TO, 1, SEQUENCE, minimum=10)),  # V-RACP-D3
        ("01 04 01 0A 00 14 00", RacpRequest(1, REPORT, 4, RacpOperator.WITHIN_RANGE_OF, 1, SEQUENCE, 10, 20)),  # V-RACP-D4
        ("03 00", RacpRequest(3, RacpOpCode.ABORT_OPERATION, 0, RacpOperator.NULL)),  # V-RACP-D5
        ("05 00 03 00", RacpNumberOfRecords(3)),  # V-RACP-D6
        ("06 00 01 01", RacpResponse(1, REPORT, 1, RacpResponseCode.SUCCESS)),
        ("06 00 01 06", RacpResponse(1, REPORT, 6, RacpResponseCode.NO_RECORDS_FOUND)),
        ("06 00 03 07", RacpResponse(3, RacpOpCode.ABORT_OPERATION, 7, RacpResponseCode.ABORT_UNSUCCESSFUL)),
        ("06 00 09 0A", RacpResponse(9, None, 10, None)),  # RFU request op code and response code kept raw
        ("02 01", RacpRequest(2, RacpOpCode.DELETE_STORED_RECORDS, 1, ALL)),
        ("01 05", RacpRequest(1, REPORT, 5, RacpOperator.FIRST_RECORD)),
        ("01 06", RacpRequest(1, REPORT, 6, RacpOperator.LAST_RECORD)),
        ("01 02 01 FF FF", RacpRequest(1, REPORT, 2, RacpOperator.LESS_THAN_OR_EQUAL_TO, 1, SEQUENCE, maximum=0xFFFF)),
        ("01 02 02 E8 07 03 0F 08 1E 00",  # Glucose: user facing time filter
         RacpRequest(1, REPORT, 2, RacpOperator.LESS_THAN_OR_EQUAL_TO, 2, RacpFilterType.USER_FACING_TIME,
                     maximum=BleDateTime(2024, 3, 15, 8, 30, 0))),
        ("01 04 02 E8 07 03 0F 00 00 00 E8 07 03 0F 17 3B 3B",
         RacpRequest(1, REPORT, 4, RacpOperator.WITHIN_RANGE_OF, 2, RacpFilterType.USER_FACING_TIME,
                     BleDateTime(2024, 3, 15, 0, 0, 0), BleDateTime(2024, 3, 15, 23, 59, 59))),
        ("01 07 AB CD", RacpRequest(1, REPORT, 7, None, operand=octets("AB CD"))),  # RFU operator: operand kept raw
        ("01 03 09 01 02 03", RacpRequest(1, REPORT, 3, RacpOperator.GREATER_THAN_OR_EQUAL_TO, 9, None, operand=octets("01 02 03"))),
        ("00 00", RacpRequest(0, None, 0, RacpOperator.NULL)),  # RFU op codes kept raw
        ("FF 01 02", RacpRequest(0xFF, None, 1, ALL, operand=octets("02"))),
    ],
)  # fmt: skip
def test_racp_vectors(vector: str, expected: RacpValue) -> None:
    assert parse_record_access_control_point(octets(vector)) == expected


def test_response_success() -> None:
    success = parse_record_access_control_point(octets("06 00 01 01"))
    assert isinstance(success, RacpResponse)
    assert success.success
    no_records = parse_record_access_control_point(octets("06 00 01 06"))
    assert isinstance(no_records, RacpResponse)
    assert not no_records.success


@pytest.mark.parametrize(
    ("encoded", "vector"),
    [
        (report_all_records(), "01 01"),
        (report_number_of_all_records(), "04 01"),
        (report_records_from(10), "01 03 01 0A 00"),
        (report_records_in_range(10, 20), "01 04 01 0A 00 14 00"),
        (abort_operation(), "03 00"),
        (delete_all_records(), "02 01"),
        (report_records_from(0xFFFF), "01 03 01 FF FF"),
        (report_records_in_range(7, 7), "01 04 01 07 00 07 00"),
    ],
)
def test_encoders_write_the_spec_vectors_and_parse_back(encoded: bytes, vector: str) -> None:
    assert encoded == octets(vector)
    assert isinstance(parse_record_access_control_point(encoded), RacpRequest)


@pytest.mark.parametrize(
    ("encode", "message"),
    [
        (lambda: report_records_in_range(20, 10), "range minimum 20 is above maximum 10"),
        (lambda: report_records_from(-1), "first must be 0..65535, got -1"),
        (lambda: report_records_from(0x10000), "first must be 0..65535, got 65536"),
        (lambda: report_records_in_range(0, 0x10000), "maximum must be 0..65535, got 65536"),
    ],
)
def test_encoders_refuse_what_the_operand_cannot_carry(encode: Callable[[], bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode()


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("", "Record Access Control Point: empty value"),
        ("01", "Record Access Control Point: op code 0x01 needs an operator"),
        ("01 01 00", "Record Access Control Point: 1 trailing octet(s) after the last field"),
        ("03 00 00", "Record Access Control Point: 1 trailing octet(s)"),
        ("01 03", "Record Access Control Point: op code 0x01 operator 0x03 need 3 octets, have 2"),
        ("01 03 01 0A", "Record Access Control Point: op code 0x01 operator 0x03 need 5 octets, have 4"),
        ("01 04 01 0A 00 14", "Record Access Control Point: op code 0x01 operator 0x04 need 7 octets, have 6"),
        ("01 04 01 0A 00 14 00 00", "Record Access Control Point: 1 trailing octet(s)"),
        ("01 02 02 E8 07 03 0F 08 1E", "Record Access Control Point: op code 0x01 operator 0x02 need 10 octets, have 9"),
        ("01 02 02 E8 07 0D 0F 08 1E 00", "Record Access Control Point: Maximum has out-of-range month"),
        ("05 00 03", "Record Access Control Point: op code 0x05 operator 0x00 need 4 octets, have 3"),
        ("05 00 03 00 00", "Record Access Control Point: 1 trailing octet(s)"),
        ("05 01 03 00", "Record Access Control Point: op code 0x05 is a response: operator must be Null (0x00), not 0x01"),
        ("06 00 01", "Record Access Control Point: op code 0x06 operator 0x00 need 4 octets, have 3"),
        ("06 00 01 01 00", "Record Access Control Point: 1 trailing octet(s)"),
        ("06 03 01 01", "Record Access Control Point: op code 0x06 is a response"),
    ],
)
def test_rejections_name_the_problem(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_record_access_control_point(octets(vector))
    assert str(caught.value).startswith(message)


test_racp_fuzz = fuzz(parse_record_access_control_point)
