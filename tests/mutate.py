"""Break the code on purpose and see the tests catch it: a small, hand-picked mutation run.

    .venv/bin/python tests/mutate.py [--only NAME]

Each mutation is a one-line change of the kind a slip of the hand makes: a flipped
comparison, a negation table off by one, a secret ring that only tries its last secret.
Each runs in a fresh copy of the tracked files (the working tree is never touched) against
the tests that should catch it; a mutation the tests let through is a hole to fill. Exit 1
if any survives. Issue 16's review found two survivors of ten before this file existed:
the literal-left comparison and the rotated secret (both below). The literal-left one is
run twice: the second time against the random rule bases alone, which catch it since the
reference evaluator reads the condition text itself (it survived them when the reference
walked the parser's tree). Every secret, key and token check has its "last place only"
mutation. Only failing tests count as caught: a test run that errors (a missing file, a
bad option) stops the run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


FAST = ("tests/language", "tests/test_reference.py", "tests/test_properties.py",
        "tests/test_rulebook.py", "tests/test_examples.py")
WORDS = ("tests/test_words.py", "tests/test_explain_words.py", "tests/test_examples.py")
ROTATION = ("tests/service/test_signatures.py", "tests/service/test_rotation.py")
MUTATIONS = [
    Mutation("literal-left comparison not flipped", "qualify/conditions.py",
             "left, right, op = right, left, _FLIP[op]", "left, right, op = right, left, op",
             FAST),
    Mutation("negation table: not (n < x) read as n > x", "qualify/conditions.py",
             '"!=": "==", "<": ">=", ">=": "<"', '"!=": "==", "<": ">", ">=": "<"', FAST),
    Mutation("literal-left comparison not flipped, seen by random rule bases alone",
             "qualify/conditions.py", "left, right, op = right, left, _FLIP[op]",
             "left, right, op = right, left, op", ("tests/test_reference.py",)),
    Mutation("literal-left table off by one: 5 <= n read as n > 5", "qualify/conditions.py",
             '"<=": ">=", ">": "<", ">=": "<="}', '"<=": ">", ">": "<", ">=": "<="}', FAST),
    Mutation("a chain keeps only its first link", "qualify/conditions.py",
             "return parts[0] if len(parts) == 1 else And(tuple(parts))", "return parts[0]",
             FAST),
    *(Mutation(f"a rotated {what} only accepted in last place", file, old, new, ROTATION)
      for what, file, old, new in [
          ("HubSpot v3 secret", "service/signatures.py",
           "    for secret in secrets:  # no early exit", "    for secret in secrets[-1:]:  #"),
          ("HubSpot v1/v2 secret", "service/signatures.py",
           "    for secret in secrets:\n        ok |= _same(_bytes(hubspot_legacy",
           "    for secret in secrets[-1:]:\n        ok |= _same(_bytes(hubspot_legacy"),
          ("generic secret", "service/signatures.py",
           "    for secret in secrets:\n        expected",
           "    for secret in secrets[-1:]:\n        expected"),
          ("Pipedrive credential", "service/signatures.py",
           "for credential in credentials:", "for credential in credentials[-1:]:"),
          ("static token", "service/signatures.py",
           "for token in tokens:", "for token in tokens[-1:]:"),
          ("API key", "service/security.py",
           "for digest in self._digests:", "for digest in self._digests[-1:]:"),
          ("HubSpot secret (in its adapter)", "service/inbound/hubspot.py",
           "for s in settings.hubspot_secrets]", "for s in settings.hubspot_secrets][-1:]"),
          ("Zoho or Dataverse token (in their adapter)", "service/inbound/token.py",
           "for t in tokens]", "for t in tokens][-1:]"),
      ]),
    Mutation("patterns of mappings stop ignoring case", "qualify/patterns.py",
             "options.case_sensitive = not ignore_case", "options.case_sensitive = True",
             ("tests/test_patterns.py", "tests/batch/test_mapping.py")),
    Mutation("an ordered comparison's mask cut on the wrong side", "qualify/authoring/solver.py",
             '"<": (bisect.bisect_left, True)', '"<": (bisect.bisect_right, True)',
             ("tests/authoring/test_solver.py", "tests/authoring/test_check.py")),
    Mutation("'surely within' that only meets", "qualify/authoring/solver.py",
             "return all(any(_within(b, c) for c in other.boxes) for b in self.boxes)",
             "return all(any(_meet(b, c) is not None for c in other.boxes) for b in self.boxes)",
             ("tests/authoring/test_solver.py",)),
    Mutation("a failing rule test lets the rule base go live", "service/state.py",
             "        if failed:\n", "        if False:\n", ("tests/service/test_rulebook.py",)),
    Mutation("a sibling builds from the file, not the activation", "service/state.py",
             "new = await anyio.to_thread.run_sync(build, Sources.of_activation(activation))",
             "new = await anyio.to_thread.run_sync(build_snapshot, self.settings.rules, "
             "self.settings.mappings_dir)",
             ("tests/service/test_rulebook.py",)),
    Mutation("evidence from branches that did not decide a rule", "qualify/explain.py",
             "            if pst is st:\n", "            if pst is not None:\n", WORDS),
    Mutation("unknown dropped in the explainer: and/or of unknown read as decided",
             "qualify/explain.py", "return None if unknown else not settles", "return not settles",
             WORDS),
    Mutation("a known() guard cited where a test on the field decided", "qualify/explain.py",
             'return [e for e in items if e["test"] not in guard',
             "return [e for e in items if True",
             WORDS),
    Mutation("a value that failed its test no longer says what it is not", "qualify/words.py",
             'plain = op == "==" or holds', "plain = True", WORDS),
    Mutation("'Yes' no longer reads as true", "qualify/leads.py",
             '"yes"', '"yess"', FAST),
    Mutation("a lead's field values sent back in the wrong order", "qualify/batch/runner.py",
             "out.values.append(tuple(raw.get(f) for f in names))",
             "out.values.append(tuple(raw.get(f) for f in reversed(names)))",
             ("tests/batch/test_outcome.py", "tests/analyze/test_rules.py")),
    Mutation("rules diff says the old condition in the new one's words",
             "qualify/authoring/diff.py",
             "None if y is None else self.new.condition(y.expr)",
             "None if y is None else self.new.condition(x.expr if x else y.expr)",
             ("tests/authoring/test_diff.py",)),
]


def tracked_copy(into: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src, dst = ROOT / name, into / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def run(m: Mutation, tree: Path) -> bool:
    """True if the tests caught ``m`` (failed on the mutated code)."""
    path = tree / m.file
    original = path.read_text(encoding="utf-8")
    if original.count(m.old) < 1:
        raise SystemExit(f"{m.name}: '{m.old}' is not in {m.file} any more: update the mutation")
    path.write_text(original.replace(m.old, m.new, 1), encoding="utf-8")
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                                 "no:cacheprovider", "-m", "not slow",
                                 "--hypothesis-profile=mutate", *m.tests],
                                cwd=tree, capture_output=True, text=True, check=False)
        if result.returncode not in (0, 1):  # 1: tests failed; anything else is not a test
            raise SystemExit(f"{m.name}: pytest exited {result.returncode}:\n"
                             f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result.returncode == 1
    finally:
        path.write_text(original, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the mutations whose name contains this")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or args.only in m.name]
    survivors = []
    with tempfile.TemporaryDirectory(prefix="qualify-mutate-") as tmp:
        tree = Path(tmp)
        tracked_copy(tree)
        for m in chosen:
            started = time.monotonic()
            caught = run(m, tree)
            print(f"{'caught  ' if caught else 'SURVIVED'} {m.name} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            if not caught:
                survivors.append(m.name)
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutations caught")
    raise SystemExit(1 if survivors else 0)


if __name__ == "__main__":
    main()
