"""Mapping profiles: how a CRM payload or an export's columns become a lead.

Real data does not use the rule base's field names. A profile (YAML) says, per lead field,
where its value comes from (a column name or a dotted path into a JSON payload), which
values map to what (``"Yes" -> true``), and which placeholders mean "missing"
(``Select``, ``N/A``). The result is a raw lead; the schema's type conversion (leads.py)
comes after, so a profile never needs to say "this is a number".

    name: xeducation
    missing: ["", "Select", "N/A"]          # placeholders for every field
    keys: ["Prospect ID", "Converted"]      # input columns copied beside each verdict (batch)
    fields:
      lead_id: {from: "Prospect ID"}
      budget: {from: [properties.budget, properties.amount]}   # first present wins
      needs_product: {from: "Do Not Email", values: {"Yes": false, "No": true}}
      stage: {from: "Lead Stage", values: {Closed Won: won}, missing: [Unknown]}
      expected_deal_size: {value: 1000}          # a constant
      payment_history: {from: Terms, unmapped: unknown}   # a value it cannot read: missing
      contact_role:                              # first matching pattern wins (no case)
        from: jobtitle
        patterns: {"\\b(ceo|chief)\\b": executive, "founder|owner": owner}
    write_back:                             # CRM write-back: verdict item -> CRM property
      score: qualify_score
      grade: qualify_grade

``unmapped: error`` (the default) rejects a lead whose value the rule base cannot read;
``unmapped: unknown`` reads such a value as missing and scores the lead: CRMs grow new
picklist options that nobody told the rule base about. ``apply`` reports those values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from qualify.errors import Problem, RulebaseError, did_you_mean
from qualify.leads import readable
from qualify.patterns import Pattern, PatternError, compile_pattern
from qualify.rulebook import Rulebook
from qualify.yamlsource import Positions, load_yaml_file, load_yaml_text, parse_yaml_bytes

_MISSING = object()
Scalar = str | int | float | bool | None


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str | list[str] | None = Field(default=None, alias="from")
    value: Scalar | list[str] = None  # a constant
    values: dict[str, Scalar | list[str]] = {}
    missing: list[str] = []
    split: str | None = None  # split text into a list on this separator
    patterns: dict[str, Scalar] = {}  # regex (any case) -> value, first match wins
    unmapped: Literal["error", "unknown"] = "error"  # a value the rule base cannot read

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for pattern in value:
            try:
                compile_pattern(pattern)
            except PatternError as e:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: "
                                 f"{e}") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FieldMap:
        if self.source is None and self.value is None:
            raise ValueError("give 'from' (where the value is) or 'value' (a constant)")
        return self


class ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str | None = None
    # not "none": it is a real value of several default fields (repeat_potential: none)
    missing: list[str] = ["", "N/A", "n/a", "NA", "null", "-"]
    passthrough: bool = Field(default=False,
                              description="also copy input keys named like a lead field")
    keys: list[str] = Field(default=[], description="input columns copied to every output "
                            "row of a batch run (ids, or an outcome to compare with)")
    fields: dict[str, FieldMap]
    objects: list[str] = Field(default=[], description="the CRM objects scored (HubSpot: "
                               "contacts, companies, deals; Pipedrive: person, deal, lead); "
                               "events of others are acknowledged and skipped")
    write_back: dict[str, str] = Field(default={}, description="verdict item -> CRM "
                                       "property written back")

    @field_validator("write_back")
    @classmethod
    def _known_items(cls, value: dict[str, str]) -> dict[str, str]:
        for item in value:
            if item not in WRITE_BACK:
                hint = did_you_mean(item, WRITE_BACK) or f"one of {', '.join(WRITE_BACK)}"
                raise ValueError(f"'{item}' is not a verdict item ({hint})")
        return value


# What a profile may write back to a CRM record, from a verdict.
WRITE_BACK = ("score", "grade", "status", "next_step", "next_step_id", "reason",
              "weakest_factor", "rulebook", "scored_at")


class Profile:
    """A loaded mapping profile; ``apply`` turns one record into a raw lead."""

    def __init__(self, model: ProfileModel) -> None:
        self.model = model
        self.name = model.name
        self.fields = model.fields
        self.keys = tuple(model.keys)
        self.objects = frozenset(model.objects)
        self.write_back = dict(model.write_back)
        self.positions: Positions | None = None  # where each key was written, once loaded
        shared = {m.casefold() for m in model.missing}
        self._plan: list[tuple[Any, ...]] = []
        for target, fm in model.fields.items():
            sources = [fm.source] if isinstance(fm.source, str) else list(fm.source or [])
            missing = shared | {m.casefold() for m in fm.missing}
            values = {str(k).strip().casefold(): v for k, v in fm.values.items()}
            patterns = tuple((compile_pattern(p, ignore_case=True), v)
                             for p, v in fm.patterns.items())
            self._plan.append((target, sources, fm.value, values, frozenset(missing), fm.split,
                               patterns, None, [_steps(src) for src in sources]))

    def bind(self, rulebook: Rulebook) -> None:
        """Learn, from the rule base, which values the ``unmapped: unknown`` fields read."""
        for i, (target, *rest) in enumerate(self._plan):
            if self.fields[target].unmapped == "unknown" and target in rulebook.fields:
                self._plan[i] = (target, *rest[:-2], readable(rulebook.fields[target]),
                                 rest[-1])

    def apply(self, record: Mapping[str, Any],
              unread: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
        """The raw lead for ``record`` (a CSV row or a JSON payload). Values an
        ``unmapped: unknown`` field cannot read are left out, and listed in ``unread``
        as (field, value) when it is given."""
        lead: dict[str, Any] = dict(record) if self.model.passthrough else {}
        for target, sources, const, values, missing, split, patterns, check, paths \
                in self._plan:
            folded: str | None = None  # the value stripped and case-folded, once
            if sources:
                for src, steps in paths:  # the first present, non-placeholder value wins
                    value = record[src] if src in record else \
                        _walk(record, steps) if steps else _MISSING
                    if value is _MISSING or value is None:
                        continue
                    if isinstance(value, str):
                        folded = value.strip().casefold()
                        if folded in missing:
                            continue
                    break
                else:
                    lead.pop(target, None)
                    continue
            else:
                value = const
                if isinstance(value, str):
                    folded = value.strip().casefold()
                if value is None or folded in missing:
                    lead.pop(target, None)
                    continue
            if values and isinstance(value, str | int | float | bool):
                key = folded if folded is not None else str(value).strip().casefold()
                hit = values.get(key, _MISSING)
                if hit is not _MISSING:
                    value = hit
                elif patterns and isinstance(value, str):
                    value = _match(patterns, value)
            elif patterns and isinstance(value, str):
                value = _match(patterns, value)
            if split and isinstance(value, str):
                value = [p.strip() for p in value.split(split) if p.strip()
                         and p.strip().casefold() not in missing]
            if check is not None and not check(value):
                if unread is not None:
                    unread.append((target, value))
                lead.pop(target, None)
                continue
            lead[target] = value
        return lead

    def sources(self, keys: bool = True) -> frozenset[str]:
        """Every input key this profile reads: each ``from`` path, and its first segment;
        and the ``keys`` it copies, unless ``keys`` is false."""
        out: set[str] = set(self.keys) if keys else set()
        for _, sources, *_ in self._plan:
            for src in sources:
                out.add(src)
                out.add(src.split(".", 1)[0])
        return frozenset(out)

    def check_columns(self, columns: Sequence[str], source: str) -> list[Problem]:
        """Fields none of whose ``from`` columns the input ``source`` has: a typo in a column
        name left the field missing from every lead. Located at the ``from``, with "did you
        mean". A field listing alternatives is fine when one of them exists."""
        have = set(columns)
        out = []
        for (target, sources, *_), fm in zip(self._plan, self.fields.values(), strict=True):
            if not sources or any(s in have or s.split(".", 1)[0] in have for s in sources):
                continue
            first = sources[0]
            hint = did_you_mean(first, columns) or (
                f"its columns are {', '.join(columns[:12])}{', ...' if len(columns) > 12 else ''}"
                if columns else "it has no columns")
            names = " or ".join(f"'{s}'" for s in sources)
            message = f"field '{target}' reads {names}: {source} has no such column"
            if self.positions is not None:
                at = ("fields", target, "from") if fm.source is not None else ("fields", target)
                out.append(self.positions.problem(at, "unknown-column", message, hint))
            else:
                out.append(Problem("unknown-column", message, "<mapping>", 0, 0, hint))
        return out

    def unread_columns(self, columns: Sequence[str]) -> list[str]:
        """The input's columns no field (and no key) reads."""
        read = self.sources()
        return [c for c in columns if c not in read]

    def check(self, rulebook: Rulebook, file: str = "<mapping>",
              positions: Positions | None = None) -> list[Problem]:
        """Problems with this profile against a rule base (unknown target fields)."""
        out = []
        for target in self.fields:
            if target not in rulebook.fields:
                hint = did_you_mean(target, rulebook.fields) or "map to a field of the rule base"
                if positions:
                    out.append(positions.problem(("fields", target), "unknown-field",
                                                 f"'{target}' is not a field of rule base "
                                                 f"'{rulebook.name}'", hint, key=True))
                else:
                    out.append(Problem("unknown-field", f"'{target}' is not a field", file,
                                       hint=hint))
        return out


def _match(patterns: tuple[tuple[Pattern, Any], ...], value: str) -> Any:
    for pattern, result in patterns:  # RE2: time linear in the value, whatever the pattern
        if pattern.search(value):
            return result
    return value


def _steps(path: str) -> tuple[str, tuple[str, ...]]:
    """A ``from`` path and its dotted steps (none for a plain key), split once."""
    return path, tuple(path.split(".")) if "." in path else ()


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """``record[path]`` if that key exists, else follow the dots: ``data.value.amount``."""
    if path in record:
        return record[path]
    return _walk(record, tuple(path.split(".")))


def _walk(record: Mapping[str, Any], steps: tuple[str, ...]) -> Any:
    node: Any = record
    for part in steps:
        if (type(node) is dict or isinstance(node, Mapping)) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isascii() and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _load(data: Any, pos: Positions, rulebook: Rulebook | None) -> Profile:
    try:
        model = ProfileModel.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(x for x in err["loc"]
                        if not str(x).startswith(("str", "list[", "function-")))
            problems.append(pos.problem(loc, "bad-mapping", f"{'.'.join(map(str, loc))}: "
                                        f"{err['msg']}"))
        raise RulebaseError(problems) from None
    profile = Profile(model)
    profile.positions = pos
    if rulebook is not None:
        problems = profile.check(rulebook, pos.file, pos)
        if problems:
            raise RulebaseError(problems)
        profile.bind(rulebook)
    return profile


def load_profile(path: str | Path, rulebook: Rulebook | None = None) -> Profile:
    """Load a mapping profile; with a rule base, check its target fields exist."""
    data, pos = load_yaml_file(path)
    return _load(data, pos, rulebook)


def load_profile_bytes(raw: bytes, rulebook: Rulebook | None, file: str) -> Profile:
    """Load a mapping profile from a file's bytes (read once, by the caller)."""
    return _load(*parse_yaml_bytes(raw, file), rulebook)


def load_profile_text(text: str, rulebook: Rulebook | None = None,
                      file: str = "<mapping>") -> Profile:
    data, pos = load_yaml_text(text, file)
    return _load(data, pos, rulebook)
