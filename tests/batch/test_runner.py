"""Partition scoring: a pure function whose verdicts are the single-lead verdicts."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualify import Engine, LeadError, QualifyError, RulebaseError
from qualify.batch.readers import BadRecord, Item
from qualify.batch.runner import (
    Pool,
    Scorer,
    Spec,
    WorkerError,
    partitions,
    score_all,
    score_partition,
)
from qualify.rulebook import default_rules_path
from tests.batch.conftest import DEFAULT_FIELDS, FORK_IN_THREADS, synthetic
from tests.conftest import AS_OF

SPEC = Spec(rules_text=default_rules_path().read_text(encoding="utf-8"),
            rules_file=str(default_rules_path()), as_of=AS_OF, keys=("company",),
            verdicts=True)


@pytest.fixture(scope="module")
def scorer() -> Any:
    s = Scorer(SPEC)
    yield s
    s.close()


def single(engine: Engine, raw: Any) -> dict[str, Any]:
    """What scoring one lead alone gives: the verdict as JSON, or the error text."""
    try:
        return {"verdict": engine.score(raw, as_of=AS_OF).model_dump(mode="json")}
    except LeadError as e:
        return {"error": str(e)}
    except QualifyError as e:  # pragma: no cover - no engine failure expected here
        return {"error": str(e)}


def batched(part: Any, i: int, layout: Any) -> dict[str, Any]:
    error = part.rows[i][layout.index("error")]
    if error is not None:
        return {"error": error}
    return {"verdict": json.loads(part.verdicts[i])}


values = st.one_of(st.none(), st.booleans(), st.integers(-10**18, 10**18),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                   st.sampled_from(["Yes", "owner", "25,000", "2025-12-01", "lots", "", " "]),
                   st.lists(st.text(max_size=5), max_size=3))
junk_leads = st.dictionaries(st.sampled_from(DEFAULT_FIELDS), values, max_size=10)


class TestBatchEqualsSingle:
    @settings(max_examples=20, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(seed=st.integers(0, 10_000), bad_rate=st.sampled_from([0.0, 0.2]))
    def test_synthetic_leads(self, engine: Engine, scorer: Scorer, seed: int,
                             bad_rate: float) -> None:
        """For realistic leads, each batch row is exactly what scoring the lead alone gives."""
        leads = synthetic(15, seed=seed, bad_rate=bad_rate)
        part = score_partition(scorer, list(enumerate(leads, 1)))
        assert [single(engine, raw) for raw in leads] == \
               [batched(part, i, scorer.layout) for i in range(len(leads))]

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(raw=st.one_of(junk_leads, st.fixed_dictionaries(
        {"lead_id": st.text(min_size=1, max_size=8)}, optional={
            f: values for f in DEFAULT_FIELDS[1:]})))
    def test_any_record(self, engine: Engine, scorer: Scorer, raw: dict[str, Any]) -> None:
        """For any record at all, the batch row is the single verdict or the same error."""
        part = score_partition(scorer, [(1, raw)])
        assert single(engine, raw) == batched(part, 0, scorer.layout)


class TestPure:
    def test_same_input_same_output_and_input_untouched(self, scorer: Scorer) -> None:
        """Scoring a partition twice gives equal results and leaves its input as it was."""
        items: list[Item] = [*enumerate(synthetic(40, seed=3, bad_rate=0.1), 1),
                             (41, BadRecord("3 values, but the header has 2", {"company": "X"}))]
        before = copy.deepcopy(items)
        a = score_partition(scorer, items)
        b = score_partition(scorer, items)
        assert items == before
        assert (a.rows, a.verdicts, a.errors) == (b.rows, b.verdicts, b.errors)
        assert a.summary == b.summary

    def test_a_bad_record_keeps_its_line_and_keys(self, scorer: Scorer) -> None:
        """A reader's bad row becomes an error row with its line and its key columns."""
        part = score_partition(scorer, [(7, BadRecord("3 values, but the header has 2",
                                                      {"company": "Acme"}))])
        row = dict(zip(scorer.layout.names, part.rows[0], strict=True))
        assert (row["line"], row["company"], row["status"], row["error"]) == \
               (7, "Acme", None, "3 values, but the header has 2")
        assert part.errors == [(7, None, None, "3 values, but the header has 2")]


class TestPool:
    @pytest.mark.parametrize("method", ["fork", "forkserver"])
    @pytest.mark.filterwarnings(FORK_IN_THREADS)
    def test_two_workers_give_the_in_process_output_in_order(self, scorer: Scorer,
                                                             method: str) -> None:
        """Output order is input order whatever the worker count and however the workers
        start; the bytes are identical."""
        items = list(enumerate(synthetic(2100, seed=5, bad_rate=0.02), 1))
        alone = b"".join(b.data for b in score_all(SPEC, partitions(items), scorer=scorer))
        pool = Pool(SPEC, 2, method)
        try:
            pooled = b"".join(b.data for b in score_all(SPEC, partitions(items), pool=pool))
        finally:
            pool.close()
        lines = [int(row.split(b",", 1)[0]) for row in pooled.splitlines()
                 if row[:1].isdigit()]
        assert lines == list(range(1, 2101))
        assert alone == pooled

    def test_rules_the_engine_refuses_are_said_as_they_are(self) -> None:
        """A rule base too complex for the engine fails the pool with its located problem
        (exit 2 in the command), not as a dead worker."""
        from tests.batch.test_cli import TOO_COMPLEX

        spec = dataclasses.replace(SPEC, rules_text=TOO_COMPLEX, rules_file="r.yaml")
        with pytest.raises(RulebaseError) as e:
            Pool(spec, 2)
        assert e.value.problems[0].code == "too-complex"
        assert str(e.value).startswith("r.yaml:")

    def test_a_dead_worker_is_reported_not_hung(self) -> None:
        """A worker killed mid-run gives a WorkerError naming the lines, never a hang."""
        pool = Pool(SPEC, 2)
        try:
            pid = next(iter(pool._ex._processes))  # the test reaches in to kill one
            os.kill(pid, signal.SIGKILL)
            items = list(enumerate(synthetic(3000, seed=5), 1))
            with pytest.raises(WorkerError, match="worker process died while scoring"):
                list(score_all(SPEC, partitions(items), pool=pool))
        finally:
            pool.close(cancel=True)


class TestStartMethod:
    @pytest.mark.parametrize(("threads", "method"), [(0, "fork"), (1, "forkserver")])
    def test_fork_only_while_single_threaded(self, threads: int, method: str) -> None:
        """A fresh process forks its workers; one running another thread does not."""
        code = ("import threading, time\n"
                "from qualify.batch.runner import start_method\n"
                f"for _ in range({threads}):\n"
                "    threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
                "print(start_method())\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=60)
        assert out.stdout.strip() == method
