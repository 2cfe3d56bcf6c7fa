"""`qualify batch` end to end: rows in order, bad rows listed, clear errors, no half files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qualify import Engine, default_rules_path
from tests.batch.conftest import ROOT, read_rows, run, synthetic, write_leads, writing_into
from tests.conftest import AS_OF


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


class TestRun:
    def test_rows_in_input_order_and_bad_rows_listed(self, tmp_path: Path, leads_csv: Path,
                                                     as_of: str) -> None:
        """Every input row gives one output row, in order; bad rows carry their reason,
        the errors file lists their lines, and the exit code is 1."""
        out = tmp_path / "scored.parquet"
        code, stdout, stderr = run(leads_csv, "--out", out, "--as-of", as_of, "--workers", "2")
        assert code == 1, stderr
        assert stderr == ""  # no progress bar off a terminal, no traceback
        rows = read_rows(out)
        assert [r["line"] for r in rows] == list(range(2, 302))
        bad = [r for r in rows if r["error"]]
        assert bad and all(r["status"] is None and r["grade"] is None for r in bad)
        assert all(r["status"] and r["error"] is None for r in rows if r not in bad)
        errors = read_rows(tmp_path / "scored.errors.csv")
        assert [int(e["line"]) for e in errors] == [r["line"] for r in bad]
        assert {e["field"] for e in errors} <= {"budget", "contact_role", "last_contact_date"}
        assert f"{len(bad)} rows could not be scored" in stdout
        assert names(tmp_path) == {"leads.csv", "scored.parquet", "scored.errors.csv"}

    def test_exit_0_and_the_summary(self, tmp_path: Path, as_of: str) -> None:
        """With no bad row the exit code is 0; the summary has every section asked for."""
        src = write_leads(tmp_path / "leads.csv", synthetic(120, seed=2))
        code, stdout, _ = run(src, "--out", tmp_path / "o.csv", "--as-of", as_of,
                              "--workers", "1")
        assert code == 0
        for heading in ("120 rows from", "status", "grade", "most fired traits",
                        "weakest factor", "next step", "missing fields that cost the most"):
            assert heading in stdout
        assert "(0 failed rows)" in stdout and "rows from" in stdout
        assert read_rows(tmp_path / "o.errors.csv") == []

    def test_jsonl_output_carries_the_single_lead_verdict(self, tmp_path: Path, as_of: str,
                                                          engine: Engine) -> None:
        """The verdict in a JSONL row is exactly `engine.score` of that lead."""
        leads = synthetic(50, seed=8, bad_rate=0.1)
        src = write_leads(tmp_path / "leads.jsonl", leads)
        run(src, "--out", tmp_path / "o.jsonl", "--as-of", as_of, "--workers", "2")
        for lead, row in zip(leads, read_rows(tmp_path / "o.jsonl"), strict=True):
            if row["error"]:
                assert row["verdict"] is None
            else:
                assert engine.score(lead, as_of=AS_OF).model_dump(mode="json") == row["verdict"]

    @pytest.mark.parametrize(("src", "dst"), [("csv", "csv"), ("jsonl", "parquet"),
                                              ("parquet", "jsonl")])
    def test_every_format_in_and_out(self, tmp_path: Path, as_of: str, src: str,
                                     dst: str) -> None:
        """CSV, JSONL and Parquet in and out give the same verdicts for the same leads."""
        leads = synthetic(40, seed=4)
        ref = write_leads(tmp_path / "ref.csv", leads)
        run(ref, "--out", tmp_path / "ref_out.csv", "--as-of", as_of, "--workers", "1")
        inp = write_leads(tmp_path / f"in.{src}", leads)
        run(inp, "--out", tmp_path / f"out.{dst}", "--as-of", as_of, "--workers", "1")
        want = [(r["lead_id"], r["status"], int(r["score"]), r["traits"])
                for r in read_rows(tmp_path / "ref_out.csv")]
        got = [(r["lead_id"], r["status"], int(r["score"]), r["traits"])
               for r in read_rows(tmp_path / f"out.{dst}")]
        assert want == got

    def test_a_mapping_renames_columns_maps_values_and_keeps_keys(self, tmp_path: Path,
                                                                  as_of: str) -> None:
        """A profile maps an export's columns and values; its keys are copied, and a key
        that clashes with an output column is renamed input_<name>."""
        src = tmp_path / "export.csv"
        src.write_text("Lead ID,Budget (USD),Role,status\n"
                       "7,25000,Owner,open\n8,Select,Boss,won\n9,lots,Owner,open\n",
                       encoding="utf-8")
        mapping = tmp_path / "m.yaml"
        mapping.write_text("name: export\nmissing: ['', Select]\nkeys: ['Lead ID', status]\n"
                           "fields:\n  lead_id: {from: Lead ID}\n"
                           "  budget: {from: Budget (USD)}\n"
                           "  contact_role: {from: Role, values: {Boss: owner}}\n",
                           encoding="utf-8")
        code, _, _ = run(src, "--out", tmp_path / "o.csv", "--map", mapping, "--as-of", as_of,
                         "--workers", "1")
        assert code == 1
        rows = read_rows(tmp_path / "o.csv")
        assert list(rows[0])[:5] == ["line", "Lead ID", "input_status", "lead_id", "status"]
        assert [(r["Lead ID"], r["input_status"], r["lead_id"]) for r in rows] == \
               [("7", "open", "7"), ("8", "won", "8"), ("9", "open", "9")]
        assert rows[0]["qualifier_authority"] == rows[1]["qualifier_authority"] == "met"
        assert rows[1]["qualifier_buying_power"] == "unknown"  # "Select" means missing
        assert rows[2]["error"] == "budget: expected a number, got 'lots'"

    def test_unmapped_unknown_scores_the_row_and_counts_the_value(self, tmp_path: Path,
                                                                   as_of: str) -> None:
        """With unmapped: unknown, a value the rule base cannot read is missing, the row is
        scored (exit 0), and the summary counts such values per field."""
        src = tmp_path / "export.csv"
        src.write_text("id,Role\n1,Owner\n2,Olark Chat\n3,Olark Chat\n", encoding="utf-8")
        mapping = tmp_path / "m.yaml"
        mapping.write_text("name: export\nfields:\n  lead_id: {from: id}\n"
                           "  contact_role: {from: Role, unmapped: unknown}\n",
                           encoding="utf-8")
        code, stdout, _ = run(src, "--out", tmp_path / "o.csv", "--map", mapping,
                              "--as-of", as_of, "--workers", "2")
        assert code == 0
        assert "scored as unknown (unmapped: unknown): contact_role 2" in stdout
        rows = read_rows(tmp_path / "o.csv")
        assert [r["error"] for r in rows] == ["", "", ""]  # CSV: no error

    def test_locale_zh(self, tmp_path: Path, as_of: str) -> None:
        """--locale zh writes the explanations in Chinese."""
        src = write_leads(tmp_path / "l.csv", synthetic(3, seed=1))
        run(src, "--out", tmp_path / "o.csv", "--as-of", as_of, "--locale", "zh",
            "--workers", "1")
        assert "评级" in read_rows(tmp_path / "o.csv")[0]["explanation"]


class TestNoKnownColumn:
    @pytest.mark.parametrize("fmt", ["csv", "parquet"])
    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_every_row_is_an_error_row_naming_the_columns(self, tmp_path: Path, as_of: str,
                                                          fmt: str, workers: str) -> None:
        """A file with none of the columns the rule base reads gives an error row per row
        and exit 1 in every format, the message naming the columns found and expected (a
        Parquet file gave "0 rows" and exit 0 with 2 workers: an Arrow batch with no
        columns loses its rows on the way to a worker)."""
        leads = [{"foo": str(i), "bar": "x"} for i in range(2500)]
        src = write_leads(tmp_path / f"leads.{fmt}", leads, columns=("foo", "bar"))
        out = tmp_path / "o.csv"
        code, stdout, stderr = run(src, "--out", out, "--as-of", as_of, "--workers", workers)
        assert code == 1, stderr
        assert "rows: 2,500 in = 0 scored + 2,500 error rows" in stdout
        rows = read_rows(out)
        assert len(rows) == 2500
        assert {r["error"] for r in rows} == {
            "no column the rule base reads (found: foo, bar; expected: lead_id, "
            "needs_product, pain_points, purchase_timeline_days, budget, annual_revenue, "
            "payment_history, financial_health and 17 more); name the columns as the rule "
            "base does, or map them with --map"}


class TestUnreadColumns:
    def test_the_summary_names_the_columns_no_field_reads(self, tmp_path: Path,
                                                          as_of: str) -> None:
        """Issue 15, item 1: the input's columns the mapping ignores are listed (one of them
        may be what a typo meant)."""
        src = tmp_path / "leads.csv"
        src.write_text("id,Budget,Country,Notes\na,100,DE,x\n", encoding="utf-8")
        (tmp_path / "m.yaml").write_text(
            "name: m\nfields:\n  lead_id: {from: id}\n  budget: {from: Budget}\n",
            encoding="utf-8")
        code, stdout, stderr = run(src, "--out", tmp_path / "o.csv", "--map",
                                   tmp_path / "m.yaml", "--as-of", as_of, "--workers", "1")
        assert code == 0, stderr
        assert "2 input columns no field of the mapping reads: Country, Notes" in stdout


class TestCannotRun:
    @pytest.mark.parametrize(("setup", "message"), [
        ("missing_input", "nope.csv: No such file or directory"),
        ("bad_out_ext", "unknown format '.xlsx'"),
        ("no_out_folder", "does not exist"),
        ("bad_key", "no column 'lead_ld' to copy to the output (did you mean 'lead_id'?)"),
        ("bad_compare", "not the output of 'qualify batch'"),
        ("bad_report", "the report is HTML"),
        ("yaml_syntax", "m.yaml:4:1: yaml-syntax:"),
        ("unknown_field", "m.yaml:3:3: unknown-field: 'budgte' is not a field of rule base "
                          "'default' (did you mean 'budget'?)"),
        ("bad_rules", "r.yaml:1:1:"),
        ("too_complex", "too-complex: 'positive_attitude' expands to"),
        ("column_typo", "m.yaml:4:18: unknown-column: field 'budget' reads 'Budgte': "),
        ("out_is_input", "--out is the same file as the input"),
        ("out_is_compare", "--out is the same file as --compare"),
    ])
    def test_exit_2_with_a_clear_line(self, tmp_path: Path, leads_csv: Path, setup: str,
                                      message: str) -> None:
        """A run that cannot start exits 2 with a located one-line error, and writes nothing."""
        out = tmp_path / "o.csv"
        args: list[str | Path] = [leads_csv, "--out", out]
        (tmp_path / "m.yaml").write_text("name: m\nfields:\n  budgte: {from: b}\n",
                                         encoding="utf-8")
        if setup == "missing_input":
            args[0] = tmp_path / "nope.csv"
        elif setup == "bad_out_ext":
            args[2] = tmp_path / "o.xlsx"
        elif setup == "no_out_folder":
            args[2] = tmp_path / "none" / "o.csv"
        elif setup == "bad_key":
            args += ["--key", "lead_ld"]
        elif setup == "bad_compare":
            args += ["--compare", leads_csv]
        elif setup == "bad_report":
            args += ["--report", tmp_path / "r.pdf"]
        elif setup == "yaml_syntax":
            (tmp_path / "m.yaml").write_text("name: m\nfields:\n  x: [\n", encoding="utf-8")
            args += ["--map", tmp_path / "m.yaml"]
        elif setup == "unknown_field":
            args += ["--map", tmp_path / "m.yaml"]
        elif setup == "column_typo":  # issue 15, item 1: it ran, exit 0, budget missing
            (tmp_path / "m.yaml").write_text(
                "name: m\nfields:\n  lead_id: {from: lead_id}\n  budget: {from: Budgte}\n",
                encoding="utf-8")
            args += ["--map", tmp_path / "m.yaml"]
        elif setup == "out_is_input":
            args[2] = leads_csv
        elif setup == "out_is_compare":
            previous = tmp_path / "prev.csv"
            previous.write_text("lead_id\n", encoding="utf-8")
            args[2] = previous
            args += ["--compare", previous]
        elif setup == "bad_rules":
            (tmp_path / "r.yaml").write_text("- not a rule base\n", encoding="utf-8")
            args += ["--rules", tmp_path / "r.yaml"]
        elif setup == "too_complex":  # valid, but more than the engine can hold
            (tmp_path / "r.yaml").write_text(TOO_COMPLEX, encoding="utf-8")
            args += ["--rules", tmp_path / "r.yaml", "--workers", "2"]
        before = names(tmp_path)
        code, stdout, stderr = run(*args)
        assert code == 2
        assert message in stderr
        assert "Traceback" not in stderr + stdout
        assert names(tmp_path) == before


def _too_complex() -> str:
    text = default_rules_path().read_text(encoding="utf-8")
    old = 'when: sentiment == "positive"'
    assert old in text
    return text.replace(old, 'when: stage in ["new", "contacted", "meeting", "proposal", '
                        '"negotiation", "won", "lost"] and influence in ["high", "medium", '
                        '"low", "none"] and sentiment in ["positive", "neutral", "negative"]')


TOO_COMPLEX = _too_complex()


def _writing(src: Path, output: Path) -> subprocess.Popen[str]:
    """`qualify batch SRC --out OUTPUT --workers 2` in its own process group, once it has
    started writing (it has a file open in OUTPUT's folder: one with no name yet)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from qualify.cli import main; main()", "batch", str(src),
         "--out", str(output), "--workers", "2", "--as-of", "2026-01-01"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 30
    while not writing_into(proc.pid, output.parent):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    return proc


@pytest.mark.slow
class TestInterrupted:
    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    def test_no_output_that_looks_complete(self, tmp_path: Path, sig: signal.Signals) -> None:
        """Ctrl-C (or a kill) mid-run exits 130 and leaves no output, not even a .partial."""
        # enough leads that the run outlasts the wait below, however fast the engine
        src = write_leads(tmp_path / "leads.csv", synthetic(30_000, seed=1))
        proc = _writing(src, tmp_path / "o.parquet")
        time.sleep(0.3)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole process group
        else:
            os.kill(proc.pid, sig)  # a kill reaches the main process only
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert stderr.strip().endswith("interrupted: no output written")
        assert names(tmp_path) == {"leads.csv"}

    def test_interrupted_at_any_moment_exits(self, tmp_path: Path) -> None:
        """Ctrl-C at moments from when the output is first written on, while workers score
        or wait: the command always exits (a race in Python 3.11's process pool once hung
        the interpreter's exit, see Pool.map). Ctrl-C while the pool starts: see
        test_interrupts.py."""
        src = write_leads(tmp_path / "leads.csv", synthetic(30_000, seed=1))
        for i, delay in enumerate((0.0, 0.05, 0.1, 0.2, 0.4, 0.8)):
            out = tmp_path / f"run{i}"
            out.mkdir()
            proc = _writing(src, out / "o.parquet")
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGINT)
            try:
                _, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise AssertionError(f"hung after Ctrl-C {delay} s into the run") from None
            assert proc.returncode == 130, stderr
            assert names(out) == set()


def test_help_names_every_option() -> None:
    """`qualify batch --help` documents the command line of the issue."""
    code, out, _ = run("--help")
    assert code == 0
    for option in ("--out", "--rules", "--map", "--workers", "--compare", "--report",
                   "--as-of", "--locale", "--key"):
        assert option in out
