"""``qualify rules schema``: the JSON Schema of the rule-base format, for editors.

Built from the loader's own pydantic models (``RulebookModel`` with each section's item model
from ``SECTION_MODELS``), so the schema cannot drift from what the loader accepts; a copy
ships as ``rules/rulebook.schema.json`` and a test checks it is current. Point an editor at
it, e.g. with a first line ``# yaml-language-server: $schema=rulebook.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, create_model

from qualify.authoring.casefile import CaseFileModel, CaseModel
from qualify.rulebook import NAME_PATTERN, SECTION_MODELS, RulebookModel

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
_DICT_SECTIONS = ("fields", "factors", "qualifiers")

# Hover text for editors, by model and key.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "Rulebook": {
        "": "A qualify rule base: lead fields, the three qualifying conditions, golden and bad "
            "traits with points, grades and next steps.",
        "rulebook": "The rule base's name.",
        "version": "Its version; shown on every verdict.",
        "locale": "The language of verdicts when none is asked for: en or zh.",
        "currency": "The currency of money fields, e.g. USD.",
        "score": "Score = base + the points of every trait that fired, clamped to [min, max].",
        "fields": "The lead fields rules may read, by name.",
        "factors": "Extra factors (staves of the bucket) that traits may name; each "
                   "qualifier is a factor of its own.",
        "qualifiers": "The qualifying conditions, by id: all met = qualified, one unmet = "
                      "disqualified, otherwise one unknown = needs discovery.",
        "traits": "Golden traits (points > 0) and bad traits (points < 0).",
        "grades": "Grades by minimum score; the lowest must cover the score minimum.",
        "next_steps": "Tried in order; the first whose condition holds is recommended. The "
                      "last has no 'when'.",
    },
    "FieldModel": {
        "type": "string, number, integer, boolean, date (YYYY-MM-DD), enum or list.",
        "values": "The allowed values of an enum field.",
        "min": "The smallest allowed number.", "max": "The largest allowed number.",
        "required": "A lead without this field is refused.",
    },
    "TraitModel": {
        "id": "A unique id: letters, digits and _.",
        "kind": "golden (adds points) or bad (takes points away).",
        "points": "Points added when it fires: > 0 for golden, < 0 for bad traits.",
        "when": "The condition, e.g. budget >= 10000 and contact_role in [\"owner\"].",
        "factor": "The factor (qualifier id or a name under 'factors') it counts towards.",
    },
    "QualifierModel": {
        "when": "The condition, e.g. is_decision_maker or contact_role in [\"owner\"].",
    },
    "NextStepModel": {
        "when": "The condition; may read qualifier.<id>, trait.<id>, status, grade, score. "
                "Leave it out on the last step.",
        "reason": "Why, in en and zh; {field} and {unmet} {unknown} {missing} {evidence} "
                  "{grade} {score} {status} are filled in.",
    },
    "GradeModel": {"min_score": "The lowest score that gets this grade."},
    "LabelModel": {"en": "English text.", "zh": "Chinese text (中文)."},
}


def _composed() -> type[BaseModel]:
    """RulebookModel with every section typed by its item model."""
    defs: dict[str, Any] = {}
    for name, model in SECTION_MODELS.items():
        top = RulebookModel.model_fields[name]
        ann: Any = dict[str, model] if name in _DICT_SECTIONS else list[model]  # type: ignore[valid-type]
        defs[name] = (ann, ... if top.is_required() else top.default)
    return create_model("Rulebook", __base__=RulebookModel, **defs)


def _describe(schema: dict[str, Any]) -> None:
    for name, node in [("Rulebook", schema), *schema.get("$defs", {}).items()]:
        texts = DESCRIPTIONS.get(name, {})
        if "" in texts:
            node["description"] = texts[""]
        else:
            node.pop("description", None)  # docstrings are for programmers
        node.pop("title", None)
        for key, prop in node.get("properties", {}).items():
            prop.pop("title", None)
            if key in texts:
                prop["description"] = texts[key]


def rulebook_schema() -> dict[str, Any]:
    """The JSON Schema of a rule-base YAML file."""
    schema = _composed().model_json_schema()
    _describe(schema)
    name = {"pattern": "^" + NAME_PATTERN.pattern}  # the loader's rule for names and ids
    for section in ("fields", "qualifiers"):
        schema["properties"][section]["propertyNames"] = name
    for model in ("TraitModel", "NextStepModel", "GradeModel"):
        schema["$defs"][model]["properties"]["id"].update(name)
    field = schema["$defs"]["FieldModel"]
    field["if"] = {"properties": {"type": {"const": "enum"}}, "required": ["type"]}
    field["then"] = {"required": ["values"]}
    return {"$schema": SCHEMA_URI, "title": "qualify rule base", **schema}


def case_file_schema() -> dict[str, Any]:
    """The JSON Schema of a rule base's test file (``*.test.yaml``)."""
    file_schema = CaseFileModel.model_json_schema()
    case = CaseModel.model_json_schema()
    file_schema.setdefault("$defs", {}).update(case.pop("$defs", {}))
    file_schema["properties"]["cases"]["items"] = {"$ref": "#/$defs/CaseModel"}
    file_schema["$defs"]["CaseModel"] = case
    return {"$schema": SCHEMA_URI, "title": "qualify rule-base tests", **file_schema}


def dumps(schema: dict[str, Any]) -> str:
    """Stable text: what the shipped copy must equal."""
    return json.dumps(schema, ensure_ascii=False, indent=2) + "\n"
