"""``qualify rules schema``: the JSON Schema of the rule-base format; the shipped copy is
current and accepts exactly the shape the loader accepts."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from qualify.authoring.schema import dumps, rulebook_schema
from qualify.rulebook import default_rules_path
from qualify.yamlsource import load_yaml_file
from tests.authoring.conftest import DEFAULT_TESTS, Run

SHIPPED = default_rules_path().with_name("rulebook.schema.json")


def errors(schema: dict[str, Any], doc: Any) -> list[str]:
    return [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(doc)]


@pytest.fixture
def default_doc() -> Any:
    return load_yaml_file(default_rules_path())[0]


class TestShippedCopy:
    def test_is_current(self) -> None:
        """rules/rulebook.schema.json equals what `qualify rules schema` prints.

        Regenerate with: qualify rules schema --out rules/rulebook.schema.json
        """
        assert SHIPPED.read_text(encoding="utf-8") == dumps(rulebook_schema())

    def test_command_prints_it(self, run: Run) -> None:
        """The command's output is the shipped copy."""
        assert run("schema").stdout == SHIPPED.read_text(encoding="utf-8")


class TestValidation:
    def test_default_rule_base_is_valid(self, default_doc: Any) -> None:
        """The bundled rule base passes."""
        assert errors(rulebook_schema(), default_doc) == []

    def test_mistakes_are_caught(self, default_doc: Any) -> None:
        """Typos in keys, an enum without values, a bad id, a wrong type: all flagged."""
        default_doc["traits"][0]["pionts"] = 5
        default_doc["fields"]["tier"] = {"type": "enum"}
        default_doc["next_steps"][0]["id"] = "1st"
        default_doc["grades"][0]["min_score"] = "eighty"
        default_doc["fields"]["2x"] = {"type": "string"}
        found = errors(rulebook_schema(), default_doc)
        assert len(found) == 5
        assert any("'pionts' was unexpected" in e for e in found)
        assert any('"values" is a required property' in e for e in found)

    def test_describes_keys_for_editors(self) -> None:
        """Editors show descriptions on hover: the main keys have one."""
        schema = rulebook_schema()
        assert "golden" in schema["$defs"]["TraitModel"]["properties"]["points"]["description"]
        assert schema["properties"]["next_steps"]["description"]

    def test_tests_schema(self, run: Run) -> None:
        """--tests: the schema of test files, which the shipped test file passes."""
        schema = json.loads(run("schema", "--tests").stdout)
        assert errors(schema, load_yaml_file(DEFAULT_TESTS)[0]) == []
        assert errors(schema, {"cases": [{"name": "x", "lead": {}, "expect": {"gradee": "A"}}]})
