"""Read YAML safely and remember where every value came from.

The rule base is edited by hand, so this loader is strict where YAML is lax:
- anchors and aliases are refused (alias bombs, and values that change in two places);
- duplicate keys are an error, not a silent overwrite;
- plain scalars follow YAML 1.2's core schema: ``yes``/``no``/``on`` and dates stay strings;
- files over ``MAX_BYTES`` are refused before parsing.

``load_yaml`` returns the data and a ``Positions`` map from a path such as
``("traits", 3, "when")`` to the (line, column) of that value, both 1-based.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.cyaml import CParser  # type: ignore[attr-defined]
from yaml.resolver import Resolver

from qualify.errors import Problem, RulebaseError

MAX_BYTES = 1_000_000

PathKey = tuple[str | int, ...]

_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULL = {"", "~", "null", "Null", "NULL"}
_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",
}


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int
    quoted: bool = False  # the scalar was written in quotes (offsets shift by one)


@dataclass(slots=True)
class Positions:
    """Where each value (and each mapping key) of a YAML document stands."""

    file: str
    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)

    def of(self, path: PathKey, *, key: bool = False) -> Position:
        """The position of ``path``, or of its nearest ancestor that has one."""
        first, second = (self.keys, self.values) if key else (self.values, self.keys)
        p = tuple(path)
        while p:
            if p in first:
                return first[p]
            if p in second:
                return second[p]
            p = p[:-1]
        return self.values.get((), Position(1, 1))

    def problem(self, path: PathKey, code: str, message: str, hint: str | None = None,
                *, key: bool = False, offset: int = 0, severity: str = "error") -> Problem:
        pos = self.of(path, key=key)
        column = pos.column + (offset + int(pos.quoted) if offset else 0)
        return Problem(code=code, message=message, file=self.file, line=pos.line,
                       column=column, hint=hint, severity=severity)  # type: ignore[arg-type]


class _Reject(Exception):
    def __init__(self, code: str, message: str, mark: Any, hint: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.mark, self.hint = code, message, mark, hint


class _CParsed(Composer, CParser, SafeConstructor, Resolver):
    """libyaml's parser (in C: PyYAML's own was most of a large rule base's load time)
    under PyYAML's composer, so ``_Loader`` below sees every event. PyYAML's wheels all
    carry libyaml; a build without it fails at the import above."""

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


class _Loader(_CParsed):
    """A composer that refuses anchors and aliases before anything is built."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Reject("yaml-alias", f"alias '*{event.anchor}' is not allowed",
                          event.start_mark, "write the value out in full")
        if getattr(event, "anchor", None):
            raise _Reject("yaml-anchor", f"anchor '&{event.anchor}' is not allowed",
                          event.start_mark, "write the value out in full; anchors are refused")
        return super().compose_node(parent, index)


def _plain(value: str) -> Any:
    if value in _NULL:
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value.replace("_", ""))
    if _FLOAT.match(value) and any(c.isdigit() for c in value):
        return float(value.replace("_", ""))
    return value


class _Builder:
    def __init__(self, positions: Positions) -> None:
        self.pos = positions

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        mark = node.start_mark
        quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
        self.pos.values[path] = Position(mark.line + 1, mark.column + 1, quoted)
        if node.tag not in _STANDARD_TAGS:
            raise _Reject("yaml-tag", f"tag '{node.tag}' is not allowed", mark,
                          "remove the tag; plain YAML values only")
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Reject("yaml-key", "a mapping key must be a plain name",
                                  key_node.start_mark)
                key = str(key_node.value)
                if key == "<<":
                    raise _Reject("yaml-merge", "merge keys ('<<') are not allowed",
                                  key_node.start_mark, "write the keys out in full")
                if key in out:
                    first = self.pos.keys[(*path, key)]
                    raise _Reject("duplicate-key", f"duplicate key '{key}'", key_node.start_mark,
                                  f"first defined at line {first.line}")
                km = key_node.start_mark
                self.pos.keys[(*path, key)] = Position(km.line + 1, km.column + 1)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if not node.style:  # plain scalar (libyaml says "", PyYAML None): YAML 1.2 core
            return _plain(node.value)
        return node.value


def load_yaml_text(text: str, file: str = "<rules>") -> tuple[Any, Positions]:
    """Parse ``text``; raise RulebaseError with a located Problem on any mistake."""
    positions = Positions(file)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise RulebaseError([Problem("file-too-large",
                                     f"the file is over {MAX_BYTES:,} bytes", file, 1, 1,
                                     "split the rule base or remove unused rules")])
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        if node is None:
            return None, positions
        return _Builder(positions).build(node, ()), positions
    except (RecursionError, MemoryError):
        raise RulebaseError([Problem("too-complex", "the document is nested too deeply",
                                     file, 1, 1, "flatten the nesting")]) from None
    except _Reject as e:
        line, col = e.mark.line + 1, e.mark.column + 1
        raise RulebaseError([Problem(e.code, e.message, file, line, col, e.hint)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(x) for x in (e.context, e.problem) if x) or "invalid YAML"
        if "maximum nesting depth" in message:  # libyaml's own limit (1,000 levels)
            raise RulebaseError([Problem("too-complex", "the document is nested too deeply",
                                         file, line, col, "flatten the nesting")]) from None
        raise RulebaseError([Problem("yaml-syntax", message, file, line, col,
                                     "check indentation, colons and quotes")]) from None
    except yaml.YAMLError as e:
        raise RulebaseError([Problem("yaml-syntax", str(e), file, 1, 1)]) from None


def read_yaml_file(path: str | Path) -> tuple[Any, Positions, bytes]:
    """Parse a YAML file; also return the exact bytes parsed (to hash what was used)."""
    raw = read_bytes(path)
    return (*parse_yaml_bytes(raw, str(path)), raw)


def read_bytes(path: str | Path) -> bytes:
    """A YAML file's bytes (at most one over the limit); unreadable is a located error."""
    p = Path(path)
    try:
        if p.is_dir():
            raise IsADirectoryError(21, "is a directory")
        with p.open("rb") as f:
            return f.read(MAX_BYTES + 1)
    except OSError as e:
        reason = e.strerror or str(e)
        raise RulebaseError([Problem("file-unreadable", reason, str(path), 0, 0)]) from None


def parse_yaml_bytes(raw: bytes, name: str) -> tuple[Any, Positions]:
    """Parse the bytes of a YAML file called ``name`` (in messages). Raises RulebaseError."""
    if len(raw) > MAX_BYTES:
        raise RulebaseError([Problem("file-too-large", f"the file is over {MAX_BYTES:,} bytes",
                                     name, 1, 1, "split the rule base or remove unused rules")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RulebaseError([Problem("file-encoding", f"not UTF-8 text: {e.reason}",
                                     name, 1, 1, "save the file as UTF-8")]) from None
    return load_yaml_text(text.removeprefix("\ufeff"), name)


def load_yaml_file(path: str | Path) -> tuple[Any, Positions]:
    """Parse a YAML file: the data and where each value stands. Raises RulebaseError."""
    data, positions, _ = read_yaml_file(path)
    return data, positions
