"""Record Access Control Point (0x2A52): the requests the gateway writes and the values it gets back.

Layout (spec digest 2.10): Op Code u8 | Operator u8 | Operand (0-18 octets).

* Requests: 1 report stored records, 2 delete stored records, 3 abort operation, 4 report number of
  stored records. Operators: 0 Null, 1 all records, 2 <=, 3 >=, 4 within range (inclusive, min
  then max), 5 first record, 6 last record. Operators 2-4 carry Filter Type u8 and the value(s):
  0x01 = Sequence Number u16 for the Glucose service, Time Offset u16 for CGM; 0x02 = User Facing
  Time (Date Time, Glucose only).
* Responses (operator Null): 5 number of stored records (uint16, as Glucose and CGM send it) and
  6 response code (Request Op Code u8, Response Code Value u8).

Reserved op codes, operators and filter types are kept raw with their operand octets uninterpreted
(the operand has no format to check them against); everything else must be exactly as long as its
operator and filter type call for. The parser reads both directions, so requests can be logged and
tested; the gateway interprets the responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.octets import BleDateTime, GattParseError, OctetReader, known

RECORD_ACCESS_CONTROL_POINT = "Record Access Control Point"
_UINT16_MAX = 0xFFFF
_HEADER = 2


class RacpOpCode(IntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


class RacpOperator(IntEnum):
    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL_TO = 2
    GREATER_THAN_OR_EQUAL_TO = 3
    WITHIN_RANGE_OF = 4
    FIRST_RECORD = 5
    LAST_RECORD = 6


class RacpFilterType(IntEnum):
    SEQUENCE_NUMBER = 1
    """Glucose: the record's Sequence Number. The CGM service uses 0x01 for the Time Offset (same encoding)."""
    USER_FACING_TIME = 2
    """Glucose only: a Date Time."""


class RacpResponseCode(IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


@dataclass(frozen=True, slots=True)
class RacpRequest:
    op_code_raw: int
    op_code: RacpOpCode | None
    operator_raw: int
    operator: RacpOperator | None
    filter_type_raw: int | None = None
    filter_type: RacpFilterType | None = None
    minimum: int | BleDateTime | None = None
    """Operators >= and within range."""
    maximum: int | BleDateTime | None = None
    """Operators <= and within range."""
    operand: bytes = b""
    """Operand octets left uninterpreted (reserved op code, operator or filter type)."""


@dataclass(frozen=True, slots=True)
class RacpNumberOfRecords:
    """Op code 5: the answer to "report number of stored records"."""

    count: int


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """Op code 6: how a request ended."""

    request_op_code_raw: int
    request_op_code: RacpOpCode | None
    response_code_raw: int
    response_code: RacpResponseCode | None
    """None for reserved values (0, 10-255)."""

    @property
    def success(self) -> bool:
        return self.response_code is RacpResponseCode.SUCCESS


RacpValue = RacpRequest | RacpNumberOfRecords | RacpResponse

_REQUESTS = frozenset({RacpOpCode.REPORT_STORED_RECORDS, RacpOpCode.DELETE_STORED_RECORDS, RacpOpCode.ABORT_OPERATION,
                       RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS})  # fmt: skip
_NO_OPERAND = frozenset({RacpOperator.NULL, RacpOperator.ALL_RECORDS, RacpOperator.FIRST_RECORD, RacpOperator.LAST_RECORD})
_VALUE_SIZE = {RacpFilterType.SEQUENCE_NUMBER: 2, RacpFilterType.USER_FACING_TIME: 7}


def _need(data: bytes, needed: int) -> None:
    if len(data) < needed:
        raise GattParseError(
            RECORD_ACCESS_CONTROL_POINT,
            f"op code 0x{data[0]:02X} operator 0x{data[1]:02X} need {needed} octets, have {len(data)}",
        )


def _value(reader: OctetReader, filter_type: RacpFilterType, what: str) -> int | BleDateTime:
    if filter_type is RacpFilterType.SEQUENCE_NUMBER:
        return reader.u16(what)
    return reader.date_time(what)


def _request(data: bytes, reader: OctetReader, op_code: int, operator: int) -> RacpRequest:
    op, kind = known(RacpOpCode, op_code), known(RacpOperator, operator)
    if op is None or kind is None:
        return RacpRequest(op_code, op, operator, kind, operand=reader.rest())
    if kind in _NO_OPERAND:
        reader.finish()
        return RacpRequest(op_code, op, operator, kind)
    _need(data, _HEADER + 1)
    filter_raw = reader.u8("Filter Type")
    filter_type = known(RacpFilterType, filter_raw)
    if filter_type is None:
        return RacpRequest(op_code, op, operator, kind, filter_raw, None, operand=reader.rest())
    values = 2 if kind is RacpOperator.WITHIN_RANGE_OF else 1
    _need(data, _HEADER + 1 + values * _VALUE_SIZE[filter_type])
    first = _value(reader, filter_type, "Minimum" if kind is not RacpOperator.LESS_THAN_OR_EQUAL_TO else "Maximum")
    second = _value(reader, filter_type, "Maximum") if kind is RacpOperator.WITHIN_RANGE_OF else None
    reader.finish()
    if kind is RacpOperator.LESS_THAN_OR_EQUAL_TO:
        return RacpRequest(op_code, op, operator, kind, filter_raw, filter_type, maximum=first)
    return RacpRequest(op_code, op, operator, kind, filter_raw, filter_type, minimum=first, maximum=second)


def parse_record_access_control_point(data: bytes) -> RacpValue:
    reader = OctetReader(RECORD_ACCESS_CONTROL_POINT, data)
    if not data:
        raise reader.error("empty value")
    if len(data) < _HEADER:
        raise reader.error(f"op code 0x{data[0]:02X} needs an operator: need 2 octets, have 1")
    op_code, operator = reader.u8("Op Code"), reader.u8("Operator")
    if op_code in _REQUESTS or known(RacpOpCode, op_code) is None:
        return _request(data, reader, op_code, operator)
    if operator != RacpOperator.NULL:
        raise reader.error(f"op code 0x{op_code:02X} is a response: operator must be Null (0x00), not 0x{operator:02X}")
    _need(data, _HEADER + 2)
    if op_code == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        count = reader.u16("Number of Stored Records")
        reader.finish()
        return RacpNumberOfRecords(count)
    request, code = reader.u8("Request Op Code"), reader.u8("Response Code Value")
    reader.finish()
    return RacpResponse(request, known(RacpOpCode, request), code, known(RacpResponseCode, code))


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= _UINT16_MAX:
        raise ValueError(f"{what} must be 0..65535, got {value}")
    return value.to_bytes(2, "little")


def report_all_records() -> bytes:
    """``01 01``: report every stored record."""
    return bytes([RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS])


def report_records_from(first: int) -> bytes:
    """``01 03 01 <u16>``: records whose sequence number (Glucose) or time offset (CGM) is >= ``first``."""
    return bytes(
        [RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL_TO, RacpFilterType.SEQUENCE_NUMBER]
    ) + _u16(first, "first")


def report_records_in_range(minimum: int, maximum: int) -> bytes:
    """``01 04 01 <min u16> <max u16>``: records with sequence number (CGM: time offset) in [minimum, maximum]."""
    if minimum > maximum:
        raise ValueError(f"range minimum {minimum} is above maximum {maximum}")
    return (
        bytes([RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.WITHIN_RANGE_OF, RacpFilterType.SEQUENCE_NUMBER])
        + _u16(minimum, "minimum")
        + _u16(maximum, "maximum")
    )


def report_number_of_all_records() -> bytes:
    """``04 01``: ask how many records are stored (answered by op code 5)."""
    return bytes([RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS])


def abort_operation() -> bytes:
    """``03 00``: abort the running procedure."""
    return bytes([RacpOpCode.ABORT_OPERATION, RacpOperator.NULL])


def delete_all_records() -> bytes:
    """``02 01``: delete every stored record."""
    return bytes([RacpOpCode.DELETE_STORED_RECORDS, RacpOperator.ALL_RECORDS])


CHARACTERISTICS = (Characteristic(0x2A52, RECORD_ACCESS_CONTROL_POINT, parse_record_access_control_point),)  # control point
