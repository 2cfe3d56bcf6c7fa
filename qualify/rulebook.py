"""Load a rule base: YAML -> pydantic models -> checked, parsed rules (a ``Rulebook``).

Every mistake found is reported at once, each with its file, line and column; nothing is
half-loaded. Warnings (rules that look wrong but load) ride along on ``Rulebook.warnings``.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qualify.conditions import (
    NUMERIC,
    VERDICT_NAMES,
    ConditionError,
    Expr,
    FieldInfo,
    FieldType,
    VerdictInfo,
    parse_condition,
)
from qualify.errors import Problem, RulebaseError, closest, did_you_mean
from qualify.yamlsource import Positions, load_yaml_text, parse_yaml_bytes, read_yaml_file

LOCALES = ("en", "zh")
MAX_FIELDS = 200  # durable-rules rejects facts over ~250 properties
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}$")
_RESERVED = {*VERDICT_NAMES, "true", "false", "and", "or", "not", "in", "known", "contains",
             "count", "days_since", "matches", "sid", "id"}
_FLAGS = {"true": True, "false": False}  # a boolean's phrasing, keyed true and false
TEMPLATE_NAMES = ("unmet", "unknown", "missing", "evidence", "grade", "score", "status",
                  "lead_id")

# ----------------------------------------------------------------------------- YAML shape


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LabelModel(_Model):
    en: str | None = None
    zh: str | None = None


Text = Annotated[str, Field(min_length=1)]


class FieldModel(_Model):
    type: Literal["string", "number", "integer", "boolean", "date", "enum", "list"]
    label: LabelModel | None = None
    # an enum's values: a list, or each with its words ({prompt: {en: on time, zh: 按时}});
    # a boolean's phrasing: {true: {en: ..., zh: ...}, false: {...}}
    values: list[Text] | dict[Any, LabelModel | None] | None = None
    unit: Literal["currency"] | LabelModel | None = None  # numbers: {en: km, zh: 公里}
    min: float | None = None
    max: float | None = None
    required: bool = False
    description: str | None = None


class ScoreModel(_Model):
    base: int = 50
    min: int = 0
    max: int = 100


class QualifierModel(_Model):
    label: LabelModel
    when: str | bool
    evidence: LabelModel | None = None  # the words of its evidence, as a template
    description: str | None = None


class TraitModel(_Model):
    id: Text
    kind: Literal["golden", "bad"]
    points: int
    when: str | bool
    label: LabelModel
    factor: str | None = None
    evidence: LabelModel | None = None  # the words of its evidence, as a template
    description: str | None = None


class GradeModel(_Model):
    id: Text
    min_score: int
    label: LabelModel | None = None


class NextStepModel(_Model):
    id: Text
    when: str | bool = True
    label: LabelModel
    reason: LabelModel
    description: str | None = None


class RulebookModel(_Model):
    """The top level. Sections are validated item by item, so one bad item hides no other."""

    rulebook: Text
    version: str | int
    description: str | None = None
    currency: str | None = None
    locale: Literal["en", "zh"] = "en"
    score: ScoreModel = ScoreModel()
    fields: dict[str, Any]
    factors: dict[str, Any] = {}
    qualifiers: dict[str, Any]
    traits: list[Any] = []
    grades: list[Any]
    next_steps: list[Any]


SECTION_MODELS: dict[str, type[_Model]] = {
    "fields": FieldModel, "factors": LabelModel, "qualifiers": QualifierModel,
    "traits": TraitModel, "grades": GradeModel, "next_steps": NextStepModel,
}


# ----------------------------------------------------------------------------- loaded form

Label = dict[str, str]  # locale -> text, both locales present (missing ones fall back)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType
    label: Label
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    required: bool = False
    # the words of each value: an enum's values, a boolean's True and False
    value_labels: Mapping[Any, Label] = field(default_factory=dict)
    unit: Label | Literal["currency"] | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A qualifier, a trait or a next step: an id, a condition and what to say about it."""

    id: str
    section: Literal["qualifier", "trait", "next_step"]
    expr: Expr
    label: Label
    text: str  # the condition as written
    kind: Literal["qualifier", "golden", "bad", "next_step"] = "qualifier"
    points: int = 0
    factor: str | None = None
    reason: Label = field(default_factory=dict)
    says: Label = field(default_factory=dict)  # a template for its evidence's words
    line: int = 0

    @property
    def sources(self) -> tuple[str, ...]:
        return self.expr.sources()


@dataclass(frozen=True, slots=True)
class Grade:
    id: str
    min_score: int
    label: Label


@dataclass(frozen=True, slots=True)
class Rulebook:
    """A checked rule base, ready to compile. Immutable."""

    name: str
    version: str
    sha256: str
    source: str
    locale: str
    currency: str | None
    score_base: int
    score_min: int
    score_max: int
    fields: Mapping[str, FieldSpec]
    factors: Mapping[str, Label]
    qualifiers: tuple[Rule, ...]
    traits: tuple[Rule, ...]
    grades: tuple[Grade, ...]  # highest first
    next_steps: tuple[Rule, ...]
    warnings: tuple[Problem, ...] = ()

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.qualifiers + self.traits + self.next_steps

    def grade_for(self, score: int) -> Grade:
        for g in self.grades:
            if score >= g.min_score:
                return g
        return self.grades[-1]


# ----------------------------------------------------------------------------- loading


def _label(model: LabelModel | None, fallback: str) -> Label:
    en = model.en if model and model.en else None
    zh = model.zh if model and model.zh else None
    return {"en": en or zh or fallback, "zh": zh or en or fallback}


def _pydantic_problems(err: ValidationError, pos: Positions,
                       prefix: tuple[Any, ...] = ()) -> list[Problem]:
    out = []
    errors = err.errors()
    # a misspelt key ("whne") also makes its key missing ("when"): report the typo only
    typos = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            loc = _clean_loc(tuple(e["loc"]))
            model = _model_at((*prefix, *loc[:-1]))
            meant = closest(str(loc[-1]), list(model.model_fields) if model else [])
            if meant:
                typos.add((loc[:-1], meant))
    for e in errors:
        if e["type"] == "missing" and (_clean_loc(tuple(e["loc"]))[:-1],
                                       str(e["loc"][-1])) in typos:
            continue
        loc = (*prefix, *_clean_loc(tuple(e["loc"])))
        kind = e["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            parent_model = _model_at(loc[:-1])
            choices = list(parent_model.model_fields) if parent_model else []
            hint = did_you_mean(key, choices) or (
                f"allowed: {', '.join(choices)}" if choices else None)
            out.append(pos.problem(loc, "unknown-key", f"unknown key '{key}'", hint, key=True))
        elif kind == "missing":
            out.append(pos.problem(loc[:-1], "missing-key", f"missing key '{loc[-1]}'",
                                   f"add '{loc[-1]}:'", key=True))
        else:
            where = ".".join(str(x) for x in loc if not str(x).startswith(("function-",)))
            msg = e["msg"]
            if kind == "literal_error":
                msg = f"{where}: {msg}"
            elif where:
                msg = f"{where}: {msg} (got {e.get('input')!r})"
            out.append(pos.problem(_clean_loc(loc), "bad-value", msg))
    return out


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic inserts union member names ("str", "bool") into locations
    return tuple(x for x in loc if x not in ("str", "bool", "int", "float"))


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (for "did you mean" on unknown keys)."""
    if not loc:
        return RulebookModel
    model: type[BaseModel] | None = SECTION_MODELS.get(str(loc[0]))
    rest = loc[2:]
    for part in rest:
        if model is None:
            return None
        f = model.model_fields.get(str(part))
        if f is None:
            return None
        nested = [a for a in (f.annotation, *getattr(f.annotation, "__args__", ()))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        model = nested[0] if nested else None
    return model


class _Loader:
    def __init__(self, model: RulebookModel, sections: dict[str, dict[Any, Any]],
                 pos: Positions, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.m = model
        self.s = sections
        self.pos = pos
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    @property
    def broken(self) -> set[str]:
        """Names whose definitions failed validation (reported already)."""
        out = set()
        for section in ("fields", "qualifiers"):
            raw = self.raw.get(section)
            if isinstance(raw, dict):
                out |= {k for k in raw if k not in self.s[section]}
        for section in ("traits", "grades"):
            out |= set(self.raw_ids(section)) - {m.id for m in self.s[section].values()}
        return out

    def raw_ids(self, section: str) -> list[str]:
        raw = self.raw.get(section)
        items = raw if isinstance(raw, list) else []
        return [str(x["id"]) for x in items if isinstance(x, dict) and "id" in x]

    def err(self, path: tuple[Any, ...], code: str, msg: str, hint: str | None = None,
            **kw: Any) -> None:
        self.errors.append(self.pos.problem(path, code, msg, hint, **kw))

    def warn(self, path: tuple[Any, ...], code: str, msg: str, hint: str | None = None) -> None:
        self.warnings.append(self.pos.problem(path, code, msg, hint, severity="warning"))

    def label(self, model: LabelModel | None, path: tuple[Any, ...], fallback: str,
              what: str = "label") -> Label:
        """Text per locale, a missing locale filled from the other (warned); ``what`` names
        the text in the warning ("the unit of 'distance_km'", "the reason of 'close'")."""
        of = f"the {what} of '{fallback}'" if fallback else f"the {what}"
        if model is None or not (model.en or model.zh):
            self.warn(path, "label-missing", f"no {what} for '{fallback}'",
                      f"add {what}: {{en: ..., zh: ...}}")
        else:
            for loc in LOCALES:
                if not getattr(model, loc):
                    self.warn(path, "label-locale-missing", f"{of} has no '{loc}' text",
                              f"add {loc}: ... to the {what}")
        return _label(model, fallback)

    def fields(self) -> dict[str, FieldSpec]:
        out: dict[str, FieldSpec] = {}
        if "lead_id" not in self.s["fields"]:
            out["lead_id"] = FieldSpec("lead_id", "string", {"en": "Lead id", "zh": "线索编号"},
                                       required=True)
        if len(self.s["fields"]) > MAX_FIELDS:
            self.err(("fields",), "too-many-fields",
                     f"{len(self.s['fields'])} fields, over the limit of {MAX_FIELDS}",
                     "remove fields no rule uses")
        for name, f in self.s["fields"].items():
            path = ("fields", name)
            if not NAME_PATTERN.match(name) or name in _RESERVED:
                self.err(path, "bad-field-name", f"'{name}' cannot be a field name",
                         "use letters, digits and _, starting with a letter; not a keyword",
                         key=True)
                continue
            if name == "lead_id" and (f.type != "string"):
                self.err((*path, "type"), "bad-value", "lead_id must be of type string")
            values, value_labels = self.values(name, f, path)
            if (f.min is not None or f.max is not None) and f.type not in NUMERIC:
                self.err(path, "bad-value", f"min/max only apply to numbers ('{name}' is "
                         f"{f.type})", key=True)
            if f.min is not None and f.max is not None and f.min > f.max:
                self.err((*path, "min"), "bad-value", f"min {f.min} is above max {f.max}")
            if f.unit is not None and f.type not in NUMERIC:
                self.err((*path, "unit"), "bad-value",
                         f"'unit' only applies to numbers, and '{name}' is {f.type}",
                         "remove 'unit', or give the field type number or integer")
            unit = f.unit if f.unit is None or f.unit == "currency" \
                else self.label(f.unit, (*path, "unit"), name, "unit")
            # a field without a label shows its name; a half label is worth a warning
            label = self.label(f.label, path, name) if f.label else _label(None, name)
            out[name] = FieldSpec(name, f.type, label, values, f.min, f.max,
                                  f.required or name == "lead_id", value_labels, unit)
        return out

    def values(self, name: str, f: FieldModel, path: tuple[Any, ...]
               ) -> tuple[tuple[str, ...], dict[Any, Label]]:
        """An enum's values and the words of each; a boolean's phrasing of true and false."""
        where = (*path, "values")
        given = f.values
        if f.type == "enum":
            if not given:
                self.err(path, "missing-key", f"enum field '{name}' needs 'values'",
                         "add values: [a, b, c]", key=True)
                return (), {}
            if isinstance(given, list):
                if len(set(given)) != len(given):
                    self.err(where, "duplicate-value",
                             f"enum field '{name}' lists a value twice")
                return tuple(given), {}
            codes = [k for k in given if isinstance(k, str) and k]
            if len(codes) != len(given):
                bad = next(k for k in given if not (isinstance(k, str) and k))
                self.err((*where, bad), "bad-value", f"enum value {bad!r} is not text",
                         "quote it: \"yes\": {en: ..., zh: ...}", key=True)
            labels = {k: self.label(v, (*where, k), k) for k, v in given.items()
                      if isinstance(k, str) and v is not None}
            return tuple(codes), labels
        if given is None:
            return (), {}
        if f.type == "boolean" and isinstance(given, dict):
            flags = {_FLAGS.get(str(k).lower()): (k, v) for k, v in given.items()}
            if set(flags) != {True, False} or len(given) != 2 or None in given.values():
                self.err(where, "bad-value",
                         f"the phrasing of '{name}' needs true and false, each with its words",
                         "values: {true: {en: ..., zh: ...}, false: {en: ..., zh: ...}}")
                return (), {}
            return (), {flag: self.label(v, (*where, k), str(k).lower())
                        for flag, (k, v) in flags.items()}
        self.err(where, "bad-value",
                 f"'values' applies to enum and boolean fields, and '{name}' is {f.type}")
        return (), {}

    def rule(self, *, rid: str, section: Any, text: str | bool, path: tuple[Any, ...],
             infos: Mapping[str, FieldInfo], verdict: VerdictInfo | None,
             says: LabelModel | None = None, **extra: Any) -> Rule | None:
        parsed = parse_condition(text, infos, verdict)
        if isinstance(parsed, ConditionError) and parsed.unknown in self.broken:
            return None  # it names a broken definition, reported already
        if isinstance(parsed, ConditionError):
            self.err((*path, "when"), parsed.code, parsed.message, parsed.hint,
                     offset=parsed.offset)
            return None
        line = self.pos.of(path).line
        return Rule(id=rid, section=section, expr=parsed,
                    text=text if isinstance(text, str) else str(text).lower(), line=line,
                    says=self.says(says, (*path, "evidence"), parsed, rid) if says else {},
                    **extra)

    def says(self, model: LabelModel, path: tuple[Any, ...], expr: Expr, rid: str) -> Label:
        """A rule's own words for its evidence: a template naming {evidence} (the words
        qualify would write) or the values its condition reads."""
        names = {"evidence", *expr.sources(),
                 *(r.name for r in expr.refs() if r.kind == "derived")}
        for loc in LOCALES:
            text = getattr(model, loc)
            for n in self.placeholders(text, (*path, loc), "evidence") if text else ():
                if n not in names:
                    reads = ("name {evidence} or a value the rule's condition reads: "
                             + ", ".join(sorted(names)))
                    if n in self.s["fields"]:
                        self.err((*path, loc), "bad-template", f"'{{{n}}}' is a field, but "
                                 "this rule's condition does not read it", reads)
                        continue
                    self.err((*path, loc), "bad-template", f"unknown placeholder '{{{n}}}'",
                             did_you_mean(n, names) or reads)
        # no fallback to the other language: a locale without its own words gets qualify's
        said = {loc: text for loc in LOCALES if (text := getattr(model, loc))}
        for loc in LOCALES:
            if loc not in said:
                self.warn((*path, loc) if said else path, "label-locale-missing",
                          f"the evidence words of '{rid}' have no '{loc}' text",
                          f"add {loc}: ...; until then '{loc}' shows qualify's own words")
        return said

    def currency(self, fields: Mapping[str, FieldSpec]) -> None:
        """Amounts read as ``USD 10,000`` / ``1 万美元``: the currency is a code people know."""
        code = self.m.currency
        if code is not None and not re.fullmatch(r"[A-Z]{3}", code):
            self.warn(("currency",), "bad-currency",
                      f"currency {code!r} is not an ISO 4217 code",
                      "write its three capital letters: USD, CNY, EUR, GBP, JPY ...")
        if code is None:
            for name, f in fields.items():
                if f.unit == "currency":
                    self.warn(("fields", name, "unit"), "bad-currency",
                              f"'{name}' is an amount, but the rule base names no currency",
                              "add currency: USD (or another ISO 4217 code) at the top")
                    break

    def placeholders(self, text: str, path: tuple[Any, ...], what: str) -> list[str]:
        """The names a template's placeholders use (a broken template is reported)."""
        try:
            parts = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text)
                     if f is not None]
        except ValueError as e:
            self.err(path, "bad-template", f"{what} text: {e}",
                     "write placeholders as {field_name}; double braces for a literal {")
            return []
        if any(spec or conv for _, spec, conv in parts):
            self.err(path, "bad-template",
                     "placeholders take no format or conversion (':...' or '!r')",
                     "write {field_name} alone; values are shown in words")
            return []
        return [f for f, _, _ in parts]

    def reason(self, model: LabelModel, path: tuple[Any, ...], fields: Mapping[str, Any],
               rid: str) -> Label:
        label = self.label(model, path, rid, "reason")
        for loc in LOCALES:
            text = getattr(model, loc)
            for n in self.placeholders(text, (*path, loc), "reason") if text else ():
                if n not in fields and n not in TEMPLATE_NAMES and n not in self.broken:
                    self.err((*path, loc), "bad-template", f"unknown placeholder '{{{n}}}'",
                             did_you_mean(n, [*fields, *TEMPLATE_NAMES])
                             or f"use a field name or one of {', '.join(TEMPLATE_NAMES)}")
        return label

    def build(self, sha: str) -> Rulebook:
        m = self.m
        fields = self.fields()
        self.currency(fields)
        infos = {n: FieldInfo(f.type, f.values) for n, f in fields.items()}

        factors = {k: self.label(v, ("factors", k), k) for k, v in self.s["factors"].items()}
        qualifiers = []
        for qid, q in self.s["qualifiers"].items():
            path = ("qualifiers", qid)
            if not NAME_PATTERN.match(qid):
                self.err(path, "bad-id", f"'{qid}' cannot be a qualifier id", key=True)
                continue
            factors.setdefault(qid, _label(q.label, qid))
            r = self.rule(rid=qid, section="qualifier", text=q.when, path=path, infos=infos,
                          verdict=None, label=self.label(q.label, path, qid), kind="qualifier",
                          factor=qid, says=q.evidence)
            if r:
                qualifiers.append(r)

        traits = []
        seen: dict[str, tuple[Any, ...]] = {}
        for i, t in self.s["traits"].items():
            path = ("traits", i)
            if not self.unique_id(t.id, (*path, "id"), seen, set(m.qualifiers)):
                continue
            if t.kind == "golden" and t.points <= 0:
                self.warn((*path, "points"), "points-sign",
                          f"golden trait '{t.id}' has {t.points} points",
                          "golden traits should add points (> 0)")
            if t.kind == "bad" and t.points >= 0:
                self.warn((*path, "points"), "points-sign",
                          f"bad trait '{t.id}' has {t.points} points",
                          "bad traits should take points away (< 0)")
            if t.factor is not None and t.factor not in factors:
                self.err((*path, "factor"), "unknown-factor", f"unknown factor '{t.factor}'",
                         did_you_mean(t.factor, factors) or "declare it under 'factors'")
            r = self.rule(rid=t.id, section="trait", text=t.when, path=path, infos=infos,
                          verdict=None, label=self.label(t.label, path, t.id), kind=t.kind,
                          points=t.points, factor=t.factor, says=t.evidence)
            if r:
                traits.append(r)

        grades = []
        gseen: dict[str, tuple[Any, ...]] = {}
        for i, g in self.s["grades"].items():
            if self.unique_id(g.id, ("grades", i, "id"), gseen, set()):
                grades.append(Grade(g.id, g.min_score, _label(g.label, g.id)))
        grades.sort(key=lambda g: -g.min_score)
        if not grades:
            self.err(("grades",), "missing-key", "at least one grade is needed")
        else:
            scores = [g.min_score for g in grades]
            if len(set(scores)) != len(scores):
                self.err(("grades",), "duplicate-value", "two grades have the same min_score")
            if grades[-1].min_score > m.score.min:
                self.err(("grades",), "bad-value",
                         f"no grade covers scores below {grades[-1].min_score}",
                         f"give the lowest grade min_score: {m.score.min}")
        if not 0 <= m.score.min <= m.score.base <= m.score.max <= 100:
            self.err(("score",), "bad-value", "score must satisfy 0 <= min <= base <= max <= 100")

        verdict = VerdictInfo(tuple(m.qualifiers), tuple(self.raw_ids("traits")),
                              tuple(self.raw_ids("grades")))
        steps = []
        for i, s in self.s["next_steps"].items():
            path = ("next_steps", i)
            if not self.unique_id(s.id, (*path, "id"), seen, set(m.qualifiers)):
                continue
            r = self.rule(rid=s.id, section="next_step", text=s.when, path=path, infos=infos,
                          verdict=verdict, label=self.label(s.label, path, s.id),
                          kind="next_step",
                          reason=self.reason(s.reason, (*path, "reason"), fields, s.id))
            if r:
                steps.append(r)
        last = self.s["next_steps"].get(len(m.next_steps) - 1)
        if last is not None and last.when is not True:
            self.err(("next_steps", len(m.next_steps) - 1), "no-fallback-step",
                     f"the last next step '{last.id}' has a condition",
                     "end next_steps with a step without 'when' (it applies when none other "
                     "does)")
        if not m.next_steps:
            self.err(("next_steps",), "missing-key", "at least one next step is needed")

        if self.errors:
            raise RulebaseError(sorted(self.errors, key=lambda p: (p.line, p.column)))
        return Rulebook(
            name=m.rulebook, version=str(m.version), sha256=sha, source=self.pos.file,
            locale=m.locale, currency=m.currency, score_base=m.score.base,
            score_min=m.score.min, score_max=m.score.max, fields=fields, factors=factors,
            qualifiers=tuple(qualifiers), traits=tuple(traits), grades=tuple(grades),
            next_steps=tuple(steps),
            warnings=tuple(sorted(self.warnings, key=lambda p: (p.line, p.column))))

    def unique_id(self, rid: str, path: tuple[Any, ...], seen: dict[str, tuple[Any, ...]],
                  taken: set[str]) -> bool:
        if not NAME_PATTERN.match(rid):
            self.err(path, "bad-id", f"'{rid}' cannot be an id",
                     "use letters, digits and _, starting with a letter")
            return False
        if rid in seen or rid in taken:
            first = self.pos.of(seen[rid]).line if rid in seen else None
            self.err(path, "duplicate-id", f"duplicate id '{rid}'",
                     f"first used at line {first}" if first else "a qualifier has this id")
            return False
        seen[rid] = path
        return True


def load_rulebook_text(text: str, file: str = "<rules>") -> Rulebook:
    """Load a rule base from YAML text. Raises RulebaseError listing every problem."""
    data, pos = load_yaml_text(text, file)
    return _load(data, pos, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())


def load_rulebook(path: str | Path) -> Rulebook:
    """Load a rule base from a YAML file. Raises RulebaseError listing every problem."""
    return rulebook_from_yaml(*read_yaml_file(path))


def load_rulebook_bytes(raw: bytes, file: str) -> Rulebook:
    """Load a rule base from a file's bytes (read once, by the caller). Raises RulebaseError."""
    return rulebook_from_yaml(*parse_yaml_bytes(raw, file), raw)


def rulebook_from_yaml(data: Any, pos: Positions, raw: bytes) -> Rulebook:
    """A rule base from YAML already parsed (by ``read_yaml_file``) from the bytes ``raw``."""
    return _load(data, pos, hashlib.sha256(raw).hexdigest())


def _load(data: Any, pos: Positions, sha: str) -> Rulebook:
    if not isinstance(data, dict):
        raise RulebaseError([pos.problem((), "bad-document",
                                         "the rule base must be a mapping of sections",
                                         "start with 'rulebook: <name>'")])
    problems: list[Problem] = []
    try:
        top = RulebookModel.model_validate(data)
    except ValidationError as e:
        problems.extend(_pydantic_problems(e, pos))
        top = None
    sections: dict[str, Any] = {}
    for name, model in SECTION_MODELS.items():
        raw = data.get(name)
        items = raw.items() if isinstance(raw, dict) else enumerate(raw) \
            if isinstance(raw, list) else ()
        parsed: dict[Any, Any] = {}
        for key, item in items:
            try:
                parsed[key] = model.model_validate(item)
            except ValidationError as e:
                problems.extend(_pydantic_problems(e, pos, prefix=(name, key)))
        sections[name] = parsed
    if top is None:  # top-level shape broken: report what the items said too
        raise RulebaseError(sorted(problems, key=lambda p: (p.line, p.column)))
    loader = _Loader(top, sections, pos, data)
    loader.errors.extend(problems)
    return loader.build(sha)


def default_rules_path() -> Path:
    """The bundled default rule base (``rules/default.yaml`` at the project root)."""
    return Path(__file__).resolve().parent.parent / "rules" / "default.yaml"
