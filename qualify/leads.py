"""Turn a lead as a CRM sends it into typed values, by the rule base's field schema.

CRMs send numbers as strings ("25000"), booleans as "Yes", dates as ISO text or epoch
milliseconds, and multi-select values as "a;b". Each field is converted to its declared type
before any rule sees it; a value that cannot be converted is a ``LeadError`` naming the field.
Blank values (None, "", whitespace) mean "not known". Fields the schema does not declare are
ignored: CRMs send many properties no rule reads.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from qualify.conditions import MAX_ABS_NUMBER
from qualify.errors import LeadError, did_you_mean
from qualify.rulebook import FieldSpec, Rulebook

MAX_TEXT = 10_000  # characters in one text value
MAX_ITEMS = 1_000  # items in one list value
MAX_ID = 256
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")  # 25,000.50
_TRUE = frozenset({"true", "yes", "y", "1", "t", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "f", "off"})
_EPOCH = dt.date(1970, 1, 1)

Converter = Callable[[Any], Any]
Lead = dict[str, Any]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


MAX_DIGITS = 40  # an integer longer than this is no lead's value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits is too large")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique (YAML refuses duplicates too; JSON would keep the
    last one silently)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key[:64]!r} appears twice in one object")
            seen.add(key)
    return out


_HOOKS: dict[str, Any] = {"parse_constant": _no_constant, "parse_float": _finite_float,
                          "parse_int": _bounded_int, "object_pairs_hook": _unique_keys}
_STRICT = json.JSONDecoder(**_HOOKS)


def parse_json(text: str | bytes) -> Any:
    """Strict JSON, as leads arrive: NaN, Infinity, numbers like 1e999 or of more than 40
    digits, and a key given twice in one object are refused (ValueError). (One decoder for
    every call: ``json.loads`` with hooks builds a new one each time.)"""
    if isinstance(text, str) and not text.startswith("\ufeff"):  # json.loads names a BOM
        return _STRICT.decode(text)
    return json.loads(text, **_HOOKS)


class _Bad(Exception):
    """A value did not convert; the caller adds the field name."""


def kind_of(value: Any) -> str:
    """A value's kind, in words, for error messages ("a number", "an object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise _Bad(f"text longer than {MAX_TEXT:,} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Bad("text is not valid Unicode (a lone surrogate)") from None
    return value


def _number(value: Any, spec: FieldSpec) -> float | int:
    if type(value) is int and spec.min is None and spec.max is None \
            and abs(value) <= MAX_ABS_NUMBER:
        return int(value)  # the common case: already a plain, in-range integer
    if isinstance(value, bool):
        raise _Bad("expected a number, got true/false")
    if isinstance(value, int):
        n: float | int = value
    elif isinstance(value, float):
        n = value
    elif isinstance(value, str):
        s = value.strip()
        if len(s) > 40:
            raise _Bad(f"expected a number, got text of {len(s):,} characters")
        if _NUMBER.match(s):
            n = float(s) if any(c in s for c in ".eE") else int(s)
        elif _GROUPED.match(s):
            s = s.replace(",", "")
            n = float(s) if "." in s else int(s)
        else:
            raise _Bad(f"expected a number, got {value[:40]!r}")
    else:
        raise _Bad(f"expected a number, got {kind_of(value)}")
    if isinstance(n, float) and not math.isfinite(n):
        if isinstance(value, str):
            raise _Bad(f"{value.strip()!r} is out of range")
        raise _Bad("expected a finite number, got NaN or Infinity")
    if abs(n) > MAX_ABS_NUMBER:
        raise _Bad(f"{_size(n)} is out of range (at most {MAX_ABS_NUMBER:g} in size)")
    if spec.type == "integer":
        if isinstance(n, float):
            if not n.is_integer():
                raise _Bad(f"expected a whole number, got {n:g}")
            n = int(n)
    elif isinstance(n, float) and n.is_integer():
        n = int(n)  # 25000.0 and 25000 are one value
    if spec.min is not None and n < spec.min:
        raise _Bad(f"{n:g} is below the minimum {spec.min:g}")
    if spec.max is not None and n > spec.max:
        raise _Bad(f"{n:g} is above the maximum {spec.max:g}")
    return n


def _size(n: float) -> str:
    """A number for a message, even one too large for a float."""
    if isinstance(n, int) and n.bit_length() > 1000:
        return f"a number of about {int(n.bit_length() * 0.30103):,} digits"
    return f"{n:g}"


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise _Bad(f"expected true or false, got {value[:40]!r}")
    raise _Bad(f"expected true or false, got {kind_of(value)}")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        raise _Bad("expected a date, got true/false")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        if len(value.strip()) > 16:
            raise _Bad(f"{value.strip()[:20]}… is not a date")
        value = int(value.strip())
    if isinstance(value, int):  # epoch milliseconds, as HubSpot sends dates
        if not 0 <= value <= 253_402_300_799_000:
            raise _Bad(f"{value} is not a date (epoch milliseconds out of range)")
        return _EPOCH + dt.timedelta(milliseconds=value)
    if isinstance(value, str):
        s = value.strip()
        try:
            if len(s) == 10:
                return dt.date.fromisoformat(s)
            return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).date()
        except ValueError:
            raise _Bad(f"expected a date as YYYY-MM-DD, got {value[:40]!r}") from None
    raise _Bad(f"expected a date, got {kind_of(value)}")


def _enum(value: Any, spec: FieldSpec, folded: Mapping[str, str]) -> str:
    if not isinstance(value, str):
        # a code that reads as a number or yes/no ("1", "true") may come unquoted from JSON
        text = str(value).lower() if isinstance(value, bool | int) else None
        hit = folded.get(text) if text is not None else None
        if hit is None:
            raise _Bad(f"expected one of {', '.join(spec.values)} (as text), got "
                       f"{kind_of(value)}")
        return hit
    hit = folded.get(value.strip().casefold())
    if hit is None:
        hint = did_you_mean(value.strip(), spec.values)
        raise _Bad(f"{value[:40]!r} is not one of {', '.join(spec.values)}"
                   + (f"; {hint}" if hint else ""))
    return hit


def _string(value: Any) -> str:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise _Bad("expected text, got NaN or Infinity")
        return str(value)
    raise _Bad(f"expected text, got {kind_of(value)}")


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[Any] = [p.strip() for p in value.split(";")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise _Bad(f"expected a list of text, got {kind_of(value)}")
    if len(items) > MAX_ITEMS:
        raise _Bad(f"more than {MAX_ITEMS:,} items")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            if item.strip():
                out.append(_text(item))
        elif isinstance(item, int | float) and not isinstance(item, bool) \
                and math.isfinite(item):
            out.append(str(item))
        elif item is not None:
            raise _Bad(f"item {i} is {kind_of(item)}, not text")
    return tuple(out)


def _converter(spec: FieldSpec) -> Converter:
    t = spec.type
    if t in ("number", "integer"):
        return lambda v: _number(v, spec)
    if t == "boolean":
        return _boolean
    if t == "date":
        return _date
    if t == "enum":
        folded = {v.casefold(): v for v in spec.values}
        return lambda v: _enum(v, spec, folded)
    if t == "list":
        return _list
    return _string


def readable(spec: FieldSpec) -> Callable[[Any], bool]:
    """Whether a value converts to the field's type (a profile's ``unmapped: unknown``)."""
    convert = _converter(spec)

    def check(value: Any) -> bool:
        try:
            convert(value)
        except _Bad:
            return False
        return True

    return check


class LeadReader:
    """Converts raw leads to typed leads for one rule base. Thread-safe.

    Text values of typed fields ("25,000", "Yes", "2025-10-01": what CSV files and CRM
    webhooks send) repeat from lead to lead, so their conversions are kept, per field, up to
    ``MEMO_SIZE`` each (then that field's start over). Conversion is a pure function of the
    field and the text, and every converted value is immutable.
    """

    MEMO_SIZE = 4096

    def __init__(self, rulebook: Rulebook) -> None:
        self.converters = {name: _converter(spec) for name, spec in rulebook.fields.items()}
        self._plan = tuple((name, convert, None if rulebook.fields[name].type == "string"
                            else dict[str, Any]())
                           for name, convert in self.converters.items())
        self.required = tuple(n for n, s in rulebook.fields.items() if s.required)

    def read(self, raw: Any) -> Lead:
        """The typed lead: declared fields that have a value, converted. Raises LeadError."""
        if not isinstance(raw, Mapping):
            raise LeadError(None, f"a lead must be a JSON object, got {kind_of(raw)}")
        lead: Lead = {}
        get = raw.get
        for name, convert, memo in self._plan:
            value = get(name)
            if value is None:
                continue
            text = type(value) is str
            if text:
                if memo is not None:
                    known = memo.get(value)
                    if known is not None:
                        lead[name] = known
                        continue
                if not value.strip():
                    continue  # blank: not known
            try:
                lead[name] = converted = convert(value)
            except _Bad as e:
                raise LeadError(name, str(e)) from None
            if text and memo is not None:
                if len(memo) >= self.MEMO_SIZE:
                    memo.clear()
                memo[value] = converted
        lead_id = raw.get("lead_id")
        if isinstance(lead_id, int) and not isinstance(lead_id, bool):
            lead["lead_id"] = str(lead_id)
        for name in self.required:
            if name not in lead:
                raise LeadError(name, "is required")
        if len(lead["lead_id"]) > MAX_ID:
            raise LeadError("lead_id", f"longer than {MAX_ID} characters")
        return lead


# ----------------------------------------------------------------------------- lead files


def read_leads(path: str, stream: TextIO) -> Iterator[tuple[int, Any]] | list[tuple[int, Any]]:
    """(line number, lead) pairs: streamed for JSON lines; a JSON document gives one lead,
    or one per item of an array."""
    if path.endswith((".jsonl", ".ndjson")):
        return _read_lines(stream)
    try:
        doc = parse_json(stream.read())
    except UnicodeDecodeError:
        return [(1, BadJSON("not UTF-8 text"))]
    except ValueError as e:
        return [(1, BadJSON(str(e)))]
    if isinstance(doc, list):
        return list(enumerate(doc, 1))
    return [(1, doc)]


def _read_lines(stream: TextIO) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(stream, 1):
        if line.strip():
            try:
                yield number, parse_json(line)
            except ValueError as e:
                yield number, BadJSON(str(e))


class BadJSON:
    """A line or document that is not valid JSON, kept in place of its lead."""

    def __init__(self, message: str) -> None:
        self.message = message
