"""qualify: a YAML rule base compiled to the durable-rules Rete engine; explained verdicts.

The pipeline, one module per stage:
yamlsource (YAML with positions) -> rulebook (load and check) -> conditions (the condition
language) -> compiler (to engine conditions, facts) -> adapter (durable-rules) -> engine
(decide) -> explain (evidence, words) -> verdict (the result). leads converts inputs;
mapping maps CRM payloads and exports onto lead fields.
"""

from qualify.engine import Decision, Engine
from qualify.errors import (
    EngineClosedError,
    EngineError,
    LeadError,
    Problem,
    QualifyError,
    RulebaseError,
)
from qualify.mapping import Profile, load_profile, load_profile_text
from qualify.rulebook import Rulebook, default_rules_path, load_rulebook, load_rulebook_text
from qualify.verdict import Verdict

__all__ = [
    "Decision",
    "Engine",
    "EngineClosedError",
    "EngineError",
    "LeadError",
    "Problem",
    "Profile",
    "QualifyError",
    "RulebaseError",
    "Rulebook",
    "Verdict",
    "default_rules_path",
    "load_profile",
    "load_profile_text",
    "load_rulebook",
    "load_rulebook_text",
]
