"""Declarative device mapping templates: describe a device's JSON payload in YAML, without code.

Modelled on the device content templates of Microsoft's IoMT FHIR connector
(``CalculatedContent``: a match expression selects items, value expressions run on each item,
``$`` reaches the whole message), with JMESPath as the only expression language::

    templates:
      - name: acme-watch               # unique, lower-case letters, digits and '-'
        topic: "acme/+/telemetry"      # MQTT topic filter routed to this template
        device_from_topic: 1           # topic level (from 0) holding the device id: a '+' level
        device_claim: deviceId         # optional: a payload claim checked against that device
        readings:                      # one payload -> many readings
          - each: samples              # items of this rule (a list, or one object); default "@"
            when: "quality > `50`"     # optional filter on the item
            type: heart_rate           # a kind name, or {expression: ...} / {root: ...}
            value: hr                  # a number or numeric string (or components: {name: ...})
            unit: {literal: "/min"}    # {literal: ...}, or an expression
            time: ts                   # RFC 3339 with offset, or Unix seconds (time_unit: ms)
            scale: 1                   # value * scale + offset, exact decimal arithmetic
            offset: 0

A value source is a JMESPath string (run on the item; for ``type`` a plain string is the kind
name itself), or a mapping with exactly one of ``expression`` (on the item), ``root`` (on the
whole payload) or ``literal``. Every expression is compiled, and its functions checked, when
the file is loaded; they run over documents whose numbers are all :class:`~decimal.Decimal`
(see :class:`DecimalFunctions`).

Routing: a topic must route to one template, so topic filters may not overlap one another (nor
the native format's topics). Identity always comes from the authenticated topic level.

Mistakes raise :class:`ConfigError` with one ``<file>:<line>: <location>: <message>`` line per
problem. The evaluator is :mod:`device_adapters.mqtt.templates`.
"""

from __future__ import annotations

import copy
import decimal
import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import jmespath
import yaml
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions, signature
from jmespath.parser import ParsedResult
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from device_adapters.errors import ConfigError
from device_adapters.jsonwire import dumps
from device_adapters.mqtt.native import SUBSCRIPTION as NATIVE_SUBSCRIPTION

logger = logging.getLogger(__name__)

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A reading kind as the native format spells it (``heart_rate``)."""
MAX_UNIT_CHARS = 32
MAX_COMPONENTS = 8
MAX_TOPIC_FILTER_BYTES = 65_535
JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
"""A JSON number, which a numeric string must spell exactly (no spaces, no '+', no '.5')."""
_MAX_ERRORS = 10

Location = tuple[str | int, ...]


# --- JMESPath over Decimal documents ------------------------------------------------------------

_NUMBER_TYPES = ("float", "int", "Decimal")
_PYTHON_TYPES: Mapping[str, tuple[str, ...]] = {
    "boolean": ("bool",),
    "array": ("list", "_Projection"),
    "object": ("dict", "OrderedDict"),
    "null": ("NoneType",),
    "string": ("str",),
    "number": _NUMBER_TYPES,
    "expref": ("_Expression",),
}
_JMESPATH_TYPES: Mapping[str, str] = {python: jmes for jmes, pythons in _PYTHON_TYPES.items() for python in pythons}


class DecimalFunctions(Functions):
    """The JMESPath built-in functions, with :class:`~decimal.Decimal` as a number.

    jmespath type-checks function arguments by Python type name and knows only ``int`` and
    ``float``; device documents hold Decimals (strict JSON keeps ``2.0`` as ``2.0``), so
    ``sum``, ``avg``, ``max``, ``sort_by``... would refuse them. This class teaches the type check
    the name ``Decimal`` (overriding jmespath 1.x's private ``_get_allowed_pytypes`` and
    ``_convert_to_jmespath_type``) and makes ``type``, ``to_number``, ``to_string`` and ``avg``
    exact. Literals in expressions are turned into Decimals at load (:meth:`Expression.compile`),
    so arithmetic never mixes Decimal and float.
    """

    def _get_allowed_pytypes(self, types: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
        allowed: list[str] = []
        allowed_subtypes: list[tuple[str, ...]] = []
        for declared in types:
            outer, _, inner = declared.partition("-")
            if inner:
                allowed_subtypes.append(_PYTHON_TYPES[inner])
            allowed.extend(_PYTHON_TYPES[outer])
        return allowed, allowed_subtypes

    def _convert_to_jmespath_type(self, pyobject: str) -> str:
        return _JMESPATH_TYPES.get(pyobject, "unknown")

    @signature({"types": []})
    def _func_type(self, arg: object) -> str:
        return self._convert_to_jmespath_type(type(arg).__name__)

    @signature({"types": []})
    def _func_to_number(self, arg: object) -> object:
        if isinstance(arg, bool):
            return None
        if isinstance(arg, (Decimal, int, float)):
            return arg
        if isinstance(arg, str) and JSON_NUMBER.fullmatch(arg):
            return Decimal(arg)
        return None

    @signature({"types": []})
    def _func_to_string(self, arg: object) -> str:
        if isinstance(arg, str):
            return arg
        return dumps(arg).decode()

    @signature({"types": ["array-number"]})
    def _func_avg(self, arg: list[Decimal]) -> Decimal | None:
        if not arg:
            return None
        total = sum((_exact_decimal(value) for value in arg), Decimal(0))
        try:  # exact where the mean is a short decimal (2.5) ...
            return _EXACT_DIVISION.divide(total, len(arg))
        except ArithmeticError:  # ... else 15 significant digits, a double's worth (1/3)
            return _ROUNDED_DIVISION.divide(total, len(arg))


_EXACT_DIVISION = decimal.Context(prec=40, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])
_ROUNDED_DIVISION = decimal.Context(prec=15)


def _exact_decimal(value: Decimal | float) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


_FUNCTIONS = DecimalFunctions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)


def _decimal_literal(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else value
    if isinstance(value, list):
        return [_decimal_literal(item) for item in value]
    if isinstance(value, dict):
        return {key: _decimal_literal(item) for key, item in value.items()}
    return value


def _nodes(node: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield node  # type: ignore[misc]  # the AST is mutable dicts; the stubs call it a read-only TypedDict
    for child in node.get("children", ()):
        yield from _nodes(child)


class Expression:
    """A compiled JMESPath expression that runs over Decimal documents; compares by its text."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str, compiled: ParsedResult) -> None:
        self.source = source
        self._compiled = compiled

    @classmethod
    def compile(cls, source: str) -> Expression:
        """Compile ``source``; ``ValueError`` says what is wrong (syntax, unknown function, arity)."""
        if not source.strip():
            msg = "an expression must not be empty (use '@' for the item itself)"
            raise ValueError(msg)
        try:
            parsed = jmespath.compile(source)
        except jmespath_errors.JMESPathError as exc:
            first_line = str(exc).splitlines()[0].removesuffix(", for expression:").rstrip(":")
            msg = f"invalid JMESPath {source!r}: {first_line}"
            raise ValueError(msg) from exc
        # jmespath caches parsed trees process-wide: change a copy, never the shared one.
        tree = copy.deepcopy(parsed.parsed)
        for node in _nodes(tree):
            if node["type"] == "literal":
                node["value"] = _decimal_literal(node["value"])
            elif node["type"] == "function_expression":
                _check_call(source, node["value"], len(node["children"]))
        return cls(source, ParsedResult(source, tree))

    def search(self, document: object) -> Any:  # noqa: ANN401 - JSON is untyped until checked
        """Evaluate on ``document``; raises ``JMESPathError``/``TypeError`` on a type clash."""
        return self._compiled.search(document, options=_OPTIONS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source_type: object, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_expression,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda expression: expression.source),
        )


def _check_call(source: str, name: str, argc: int) -> None:
    spec = _FUNCTIONS.FUNCTION_TABLE.get(name)
    if spec is None:
        known = ", ".join(sorted(_FUNCTIONS.FUNCTION_TABLE))
        msg = f"invalid JMESPath {source!r}: unknown function {name}() (known: {known})"
        raise ValueError(msg)
    declared = spec["signature"]
    variadic = bool(declared) and bool(declared[-1].get("variadic"))
    if (argc < len(declared)) if variadic else (argc != len(declared)):
        expected = f"at least {len(declared)}" if variadic else str(len(declared))
        msg = f"invalid JMESPath {source!r}: {name}() takes {expected} argument(s), got {argc}"
        raise ValueError(msg)


def _validate_expression(value: object) -> Expression:
    if isinstance(value, Expression):
        return value
    if not isinstance(value, str):
        raise _invalid("jmespath", f"must be a JMESPath expression (a string), got {_yaml_type(value)}")
    try:
        return Expression.compile(value)
    except ValueError as exc:
        raise _invalid("jmespath", str(exc)) from exc


# --- the schema -----------------------------------------------------------------------------------


def _invalid(kind: str, message: str, at: Location = ()) -> PydanticCustomError:
    """A validation error, placed at ``at`` below the model that raises it (for its line number).

    The message goes in as context, never as the template: it may quote braces from the file.
    """
    return PydanticCustomError(kind, "{message}", {"message": message, "at": at})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where a field's value comes from: exactly one of the three."""

    expression: Expression | None = Field(default=None, description="JMESPath on the item")
    root: Expression | None = Field(default=None, description="JMESPath on the whole payload")
    literal: str | None = Field(default=None, description="a constant")

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [name for name in ("expression", "root", "literal") if getattr(self, name) is not None]
        if len(given) != 1:
            raise _invalid("source", "give exactly one of 'expression', 'root' or 'literal'")
        return self


def _shorthand(field: Literal["expression", "literal"]) -> BeforeValidator:
    def expand(value: object) -> object:
        if isinstance(value, str):
            # Compiled here, so a mistake is reported at the field the file names ('value', not 'value.expression').
            return {field: _validate_expression(value) if field == "expression" else value}
        if isinstance(value, (dict, Source)):
            return value
        shorthand = "a kind name" if field == "literal" else "a JMESPath string"
        raise _invalid(
            "source", f"must be {shorthand} or a mapping with one of 'expression', 'root', 'literal'; got {_yaml_type(value)}"
        )

    return BeforeValidator(expand)


ItemSource = Annotated[Source, _shorthand("expression")]
"""A plain string is a JMESPath expression on the item."""
KindSource = Annotated[Source, _shorthand("literal")]
"""A plain string is the kind's name."""
ComponentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def _refuse_literal(source: Source | None, what: str, at: Location = ()) -> None:
    if source is not None and source.literal is not None:
        raise _invalid("source", f"{what} cannot be a literal: use 'expression' or 'root'", at)


class ReadingRule(_Strict):
    """One kind of reading the payload carries: which items, and where each field is."""

    each: Expression = Field(
        default_factory=lambda: Expression.compile("@"),
        description="JMESPath on the payload giving the items (a list, or one value); null gives none",
    )
    when: Expression | None = Field(default=None, description="JMESPath filter on the item: false/null/empty skips it")
    kind: KindSource = Field(alias="type")
    value: ItemSource | None = None
    components: dict[ComponentName, ItemSource] | None = Field(default=None, min_length=1, max_length=MAX_COMPONENTS)
    unit: ItemSource
    time: ItemSource
    time_unit: Literal["s", "ms"] = Field(default="s", description="unit of numeric (Unix) times")
    scale: Decimal = Field(default=Decimal(1), description="values are value * scale + offset, exactly")
    offset: Decimal = Decimal(0)

    @field_validator("kind")
    @classmethod
    def _kind_name(cls, source: Source) -> Source:
        if source.literal is not None and not KIND_PATTERN.fullmatch(source.literal):
            raise _invalid("kind", f"{source.literal!r} is not a kind name (lower case, digits and '_', such as heart_rate)")
        return source

    @field_validator("value", "time")
    @classmethod
    def _not_literal(cls, source: Source, info: ValidationInfo) -> Source:
        _refuse_literal(source, f"'{info.field_name}'")
        return source

    @field_validator("components")
    @classmethod
    def _components_not_literal(cls, components: dict[str, Source] | None) -> dict[str, Source] | None:
        for name, source in (components or {}).items():
            _refuse_literal(source, f"component {name!r}", (name,))
        return components

    @field_validator("unit")
    @classmethod
    def _unit_length(cls, source: Source) -> Source:
        if source.literal is not None and not 0 < len(source.literal) <= MAX_UNIT_CHARS:
            raise _invalid("unit", f"a unit has 1 to {MAX_UNIT_CHARS} characters")
        return source

    @field_validator("scale")
    @classmethod
    def _scale_not_zero(cls, scale: Decimal) -> Decimal:
        if scale.is_zero():
            raise _invalid("scale", "scale must not be 0")
        return scale

    @model_validator(mode="after")
    def _one_shape(self) -> ReadingRule:
        if self.value is not None and self.components is not None:
            raise _invalid("shape", "give 'value' or 'components', not both", ("components",))
        if self.value is None and self.components is None:
            raise _invalid("shape", "give 'value' (one number) or 'components' (compound readings)")
        return self


TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]


class Template(_Strict):
    """How one device model's payloads, on one topic filter, become readings."""

    name: TemplateName
    description: str | None = None
    topic: str = Field(description="MQTT topic filter ('+' one level, '#' the rest)")
    device_from_topic: int = Field(strict=True, ge=0, le=255, description="index of the '+' level holding the device id")
    device_claim: Expression | None = Field(default=None, description="JMESPath on the payload: a device id claim to check")
    readings: tuple[ReadingRule, ...] = Field(min_length=1, max_length=64)

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, topic: str) -> str:
        problem = topic_filter_problem(topic)
        if problem is not None:
            raise _invalid("topic", problem)
        return topic

    @field_validator("device_from_topic")
    @classmethod
    def _wildcard_level(cls, level: int, info: ValidationInfo) -> int:
        topic = info.data.get("topic")
        if topic is None:  # the topic itself was refused
            return level
        levels = topic.split("/")
        if level >= len(levels) or levels[level] != "+":
            raise _invalid(
                "device_level", f"level {level} of {topic!r} must be a '+' wildcard: the device id is that level of the topic"
            )
        return level


class TemplateSet(_Strict):
    """A file of templates: names unique, topic filters disjoint (a topic routes to one template)."""

    templates: tuple[Template, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> TemplateSet:
        for index, template in enumerate(self.templates):
            if filters_overlap(template.topic, NATIVE_SUBSCRIPTION):
                raise _invalid(
                    "topic_overlap",
                    f"topic filter {template.topic!r} overlaps the native format's {NATIVE_SUBSCRIPTION!r}",
                    ("templates", index, "topic"),
                )
            for earlier_index, earlier in enumerate(self.templates[:index]):
                if earlier.name == template.name:
                    raise _invalid(
                        "duplicate_name",
                        f"template name {template.name!r} is already used by templates[{earlier_index}]",
                        ("templates", index, "name"),
                    )
                if filters_overlap(earlier.topic, template.topic):
                    raise _invalid(
                        "topic_overlap",
                        f"topic filter {template.topic!r} overlaps {earlier.topic!r} of templates[{earlier_index}]"
                        f" ({earlier.name}): a topic must route to exactly one template",
                        ("templates", index, "topic"),
                    )
        return self

    def named(self, name: str) -> Template:
        """The template called ``name`` (``KeyError`` if there is none)."""
        for template in self.templates:
            if template.name == name:
                return template
        raise KeyError(name)


# --- MQTT topic filters -------------------------------------------------------------------------


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid MQTT subscription filter (MQTT 5 section 4.7), or None."""
    checks = (
        (not topic_filter, "a topic filter must not be empty"),
        ("\x00" in topic_filter, "a topic filter must not contain U+0000"),
        (
            len(topic_filter.encode("utf-8")) > MAX_TOPIC_FILTER_BYTES,
            f"a topic filter has at most {MAX_TOPIC_FILTER_BYTES} bytes",
        ),
        (
            topic_filter.startswith("$share/"),
            "shared subscriptions ($share/...) are set in the gateway's mqtt.shared_group, not per template",
        ),
    )
    problem = next((problem for failed, problem in checks if failed), None)
    if problem is not None:
        return problem
    levels = topic_filter.split("/")
    for position, level in enumerate(levels):
        if "#" in level and (level != "#" or position != len(levels) - 1):
            return f"'#' must be a whole level and the last one: {topic_filter!r} can never match"
        if "+" in level and level != "+":
            return f"'+' must be a whole level (level {position} is {level!r}): {topic_filter!r} can never match"
    return None


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic matches both (valid) filters."""
    a, b = first.split("/"), second.split("/")
    for position in range(max(len(a), len(b))):
        if position >= len(a) or position >= len(b):
            # "x/#" matches "x" too: the longer one may only go on with a lone '#'.
            rest = b[position:] if position >= len(a) else a[position:]
            return rest == ["#"]
        left, right = a[position], b[position]
        if position == 0 and _wildcard_meets_dollar(left, right):
            return False
        if "#" in (left, right):
            return True
        if "+" not in (left, right) and left != right:
            return False
    return True


def _wildcard_meets_dollar(left: str, right: str) -> bool:
    """A leading wildcard never matches a '$' topic level (MQTT 5 section 4.7.2)."""
    wildcards = {"+", "#"}
    return (left in wildcards and right.startswith("$")) or (right in wildcards and left.startswith("$"))


# --- loading with line numbers --------------------------------------------------------------------


class _TemplateLoader(yaml.SafeLoader):
    """YAML floats become exact Decimals: ``scale: 0.001`` is 0.001, not the nearest double."""


def _decimal_float(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | float:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]  # a float tag is always on a scalar node
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        # .inf, .nan and YAML 1.1 sexagesimal: the float reading (pydantic refuses non-finite ones).
        return loader.construct_yaml_float(node)  # type: ignore[arg-type]  # as above


_TemplateLoader.add_constructor("tag:yaml.org,2002:float", _decimal_float)


@dataclass(frozen=True, slots=True)
class _Document:
    data: object
    lines: Mapping[Location, int]


def _parse(path: Path, text: str) -> _Document:
    try:
        node = yaml.compose(text, Loader=_TemplateLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        msg = f"{path}:{line}: not valid YAML: {problem}"
        raise ConfigError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"{path}:1: not valid YAML: {exc}".replace("\n", " ")
        raise ConfigError(msg) from exc
    if node is None:
        msg = f"{path}:1: the file is empty; it must hold 'templates:' (an empty list is allowed)"
        raise ConfigError(msg)
    lines: dict[Location, int] = {}
    _record_lines(path, node, (), lines)
    loader = _TemplateLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        msg = f"{path}:{line}: not valid YAML: {exc.problem}"
        raise ConfigError(msg) from exc
    finally:
        loader.dispose()
    return _Document(data, lines)


def _record_lines(path: Path, node: yaml.Node, location: Location, lines: dict[Location, int]) -> None:
    """Map every location (``("templates", 0, "readings", 1, "value")``) to its 1-based line."""
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            child = (*location, key)
            if key in seen:
                msg = f"{path}:{key_node.start_mark.line + 1}: {_dotted(child)}: duplicate key {key!r}"
                raise ConfigError(msg)
            seen.add(key)
            # An entry starts at its key (a nested block's own first line is the next one).
            lines[child] = key_node.start_mark.line + 1
            _record_lines(path, value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(path, item, (*location, index), lines)


def _dotted(location: Location) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _line_of(location: Location, lines: Mapping[Location, int]) -> int:
    """The line of ``location`` or of its nearest enclosing node (a missing field: its mapping)."""
    for length in range(len(location), -1, -1):
        line = lines.get(location[:length])
        if line is not None:
            return line
    return 1


def _problems(path: Path, exc: ValidationError, lines: Mapping[Location, int]) -> str:
    errors = exc.errors()
    failed_inside = {tuple(error["loc"][:cut]) for error in errors for cut in range(len(error["loc"]))}
    located: list[tuple[int, str]] = []
    for error in errors:
        location: Location = tuple(error["loc"])
        context = error.get("ctx") or {}
        at = context.get("at")
        if isinstance(at, tuple):
            location = (*location, *at)
        if error["type"] == "too_short" and location in failed_inside:
            continue  # "a list needs 1 item" only because its one item was refused: that item's error says why
        if error["type"] == "extra_forbidden":
            message = f"unknown field {location[-1]!r}" if location else "unknown field"
        elif error["type"] == "missing":
            message = f"required field {location[-1]!r} is missing" if location else "required field missing"
        elif error["type"] == "too_short":
            message = f"needs at least {context.get('min_length')} item(s)"
        else:
            message = error["msg"]
        located.append((_line_of(location, lines), f"{_dotted(location)}: {message}"))
    located.sort(key=lambda entry: entry[0])
    shown = [f"{path}:{line}: {text}" for line, text in located[:_MAX_ERRORS]]
    if len(located) > _MAX_ERRORS:
        shown.append(f"{path}: ... and {len(located) - _MAX_ERRORS} more")
    return "\n".join(shown)


def parse_templates(text: str, path: Path) -> TemplateSet:
    """Validate the YAML ``text`` of a template file (``path`` names it in messages)."""
    document = _parse(path, text)
    if not isinstance(document.data, dict):
        msg = f"{path}:1: the top level must be a mapping with a 'templates' list, got {_yaml_type(document.data)}"
        raise ConfigError(msg)
    try:
        return TemplateSet.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(_problems(path, exc, document.lines)) from exc


def load_templates(path: Path) -> TemplateSet:
    """Read and validate a template file; :class:`ConfigError` names the file and line of each mistake."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        msg = f"{path}: template file not found"
        raise ConfigError(msg) from exc
    except OSError as exc:
        msg = f"{path}: cannot read the template file: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError(msg) from exc
    return parse_templates(text, path)


class TemplateWatcher:
    """Reload a template file when it changes, without a restart.

    The file is loaded at construction (an invalid file raises :class:`ConfigError`: fail fast
    at start). Afterwards :meth:`poll` compares the file's identity (mtime, size, inode) with the
    last one seen; on a change it validates the new file and returns the new set, or, if the new
    file is invalid or missing (an editor half way through a save), logs the error, keeps serving
    :attr:`current`, and returns None. An unchanged file, or a change that validates to the same
    templates, returns None.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen = self._signature()
        self._current = load_templates(path)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def current(self) -> TemplateSet:
        """The templates in force: the last valid version of the file."""
        return self._current

    def poll(self) -> TemplateSet | None:
        signature = self._signature()
        if signature == self._seen:
            return None
        # Remember the identity taken *before* reading: a write during the read changes it again.
        self._seen = signature
        try:
            loaded = load_templates(self._path)
        except ConfigError as exc:
            logger.error("mapping templates not reloaded, the previous ones stay in force: %s", exc)  # noqa: TRY400 - the message is the whole story; a traceback would only add noise
            return None
        if loaded == self._current:
            return None
        self._current = loaded
        logger.info("mapping templates reloaded from %s: %s", self._path, ", ".join(t.name for t in loaded.templates) or "none")
        return loaded

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _yaml_type(value: object) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", Decimal: "a number", float: "a number"}
    names |= {str: "a string", list: "a list", dict: "a mapping"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)
