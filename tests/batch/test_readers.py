"""Readers: every input row comes out once, in order, with its line; bad rows stay in place."""

from __future__ import annotations

import csv
import io
import math
import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qualify.batch import readers
from qualify.batch.readers import BadRecord, InputError, _csv_records, decode, open_reader


def items(path: Path) -> list[tuple[int, object]]:
    reader = open_reader(path)
    try:
        return list(reader)
    finally:
        reader.close()


class TestCsv:
    def test_line_numbers_follow_the_file_with_quoted_newlines(self, tmp_path: Path) -> None:
        """A record's line is the physical line it starts on, even after multi-line cells."""
        f = tmp_path / "a.csv"
        f.write_text('lead_id,note\na,"two\nlines"\n\nb,x\n', encoding="utf-8")
        assert items(f) == [(2, {"lead_id": "a", "note": "two\nlines"}),
                            (5, {"lead_id": "b", "note": "x"})]

    def test_wrong_number_of_values_is_a_bad_row_in_place(self, tmp_path: Path) -> None:
        """Too many or too few values make that row bad; the rows after it still read."""
        f = tmp_path / "a.csv"
        f.write_text("lead_id,budget\na,1\nb,2,3\nc\nd,4,\n", encoding="utf-8")
        got = items(f)
        assert [line for line, _ in got] == [2, 3, 4, 5]
        assert got[1][1] == BadRecord("3 values, but the header has 2",
                                      {"lead_id": "b", "budget": "2"})
        assert isinstance(got[2][1], BadRecord)
        assert got[3][1] == {"lead_id": "d", "budget": "4"}  # a trailing empty cell is fine

    def test_bytes_that_are_not_utf8_make_only_that_row_bad(self, tmp_path: Path) -> None:
        """A Latin-1 byte in one row is reported on that row, naming the byte."""
        f = tmp_path / "a.csv"
        f.write_bytes(b"lead_id,city\na,Z\xfcrich\nb,Bern\n")
        got = items(f)
        assert got[0] == (2, BadRecord("not UTF-8 text (byte 0xfc)"))
        assert got[1] == (3, {"lead_id": "b", "city": "Bern"})

    def test_bom_and_empty_header_names_are_ignored(self, tmp_path: Path) -> None:
        """A UTF-8 byte-order mark and a trailing empty column name do not become columns."""
        f = tmp_path / "a.csv"
        f.write_bytes("\ufefflead_id,budget,\nx,5,\n".encode())
        reader = open_reader(f)
        assert reader.columns == ("lead_id", "budget")
        assert list(reader) == [(2, {"lead_id": "x", "budget": "5"})]
        reader.close()

    def test_select_keeps_only_the_columns_asked_for(self, tmp_path: Path) -> None:
        """Projection: unused columns never reach the record."""
        f = tmp_path / "a.csv"
        f.write_text("lead_id,a,b\nx,1,2\n", encoding="utf-8")
        reader = open_reader(f)
        reader.select(["lead_id", "b"])
        assert list(reader) == [(2, {"lead_id": "x", "b": "2"})]
        reader.close()

    @pytest.mark.parametrize(("content", "message"), [
        (b"", "empty file"),
        (b"a,b,a\n1,2,3\n", "column 'a' appears twice"),
        (b"lead\xff_id\nx\n", "the header is not UTF-8 text"),
    ])
    def test_unreadable_files_raise_one_line(self, tmp_path: Path, content: bytes,
                                             message: str) -> None:
        """A file with no usable header is an InputError naming the file, on one line."""
        f = tmp_path / "a.csv"
        f.write_bytes(content)
        with pytest.raises(InputError) as e:
            open_reader(f)
        assert message in str(e.value) and str(f) in str(e.value)
        assert "\n" not in str(e.value)

    def test_missing_file_and_unknown_extension(self, tmp_path: Path) -> None:
        """A missing file and an unknown format are InputErrors, not tracebacks."""
        with pytest.raises(InputError, match="No such file"):
            open_reader(tmp_path / "nope.csv")
        with pytest.raises(InputError, match=r"unknown format '\.xlsx'"):
            open_reader(tmp_path / "leads.xlsx")


class TestJsonl:
    def test_bad_lines_stay_in_place(self, tmp_path: Path) -> None:
        """Invalid JSON, NaN, a non-object and bad bytes are bad rows; blank lines skipped."""
        f = tmp_path / "a.jsonl"
        f.write_bytes(b'{"lead_id": "a"}\n\nnot json\n{"x": NaN}\n[1]\n"\xff"\n{"lead_id": "b"}\n')
        got = items(f)
        assert [line for line, _ in got] == [1, 3, 4, 5, 6, 7]
        assert got[0][1] == {"lead_id": "a"} and got[-1][1] == {"lead_id": "b"}
        reasons = [r.reason for _, r in got[1:-1] if isinstance(r, BadRecord)]
        assert len(reasons) == 4
        assert reasons[0].startswith("invalid JSON")
        assert "NaN is not valid JSON" in reasons[1]
        assert reasons[2] == "a lead must be a JSON object, got a list"
        assert reasons[3] == "not UTF-8 text (byte 0xff)"


class TestParquet:
    def test_nan_is_missing_and_decimals_are_exact_text(self, tmp_path: Path) -> None:
        """pandas writes missing numbers as NaN: they read as missing; decimals as text."""
        f = tmp_path / "a.parquet"
        pq.write_table(pa.table({
            "lead_id": ["a", "b"],
            "budget": [math.nan, 12.5],
            "price": pa.array([Decimal("10.10"), None], pa.decimal128(5, 2)),
        }), f)
        assert items(f) == [(1, {"lead_id": "a", "budget": None, "price": "10.10"}),
                            (2, {"lead_id": "b", "budget": 12.5, "price": None})]

    def test_select_reads_only_some_columns(self, tmp_path: Path) -> None:
        """Only the selected columns are read from the file."""
        f = tmp_path / "a.parquet"
        pq.write_table(pa.table({"lead_id": ["a"], "x": [1], "y": [2]}), f)
        reader = open_reader(f)
        reader.select(["lead_id", "y"])
        assert list(reader) == [(1, {"lead_id": "a", "y": 2})]
        reader.close()

    def test_no_column_selected_keeps_every_row(self, tmp_path: Path) -> None:
        """With no column selected, each row is still a record, also after the partition is
        pickled for a worker (an Arrow batch with no columns is unpickled with no rows)."""
        f = tmp_path / "a.parquet"
        pq.write_table(pa.table({"x": list(range(2500))}), f)
        reader = open_reader(f)
        reader.select([])
        got = [item for raw in reader.partitions(1000)
               for item in decode(pickle.loads(pickle.dumps(raw)))]
        reader.close()
        assert got == [(i, {}) for i in range(1, 2501)]

    def test_not_parquet_is_an_input_error(self, tmp_path: Path) -> None:
        """A file that is not Parquet is refused with one line."""
        f = tmp_path / "a.parquet"
        f.write_text("lead_id\nx\n", encoding="utf-8")
        with pytest.raises(InputError, match="not a readable Parquet file"):
            open_reader(f)


cell_text = st.text(alphabet=st.sampled_from(list('ab ,"\n\r;é')), max_size=6)


class TestPartitions:
    @settings(max_examples=150, deadline=None)
    @given(rows=st.lists(st.lists(cell_text, min_size=1, max_size=4), max_size=12),
           quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]),
           size=st.integers(1, 5), block=st.sampled_from([1, 7, 30, readers._BLOCK]))
    def test_csv_partitions_decode_to_the_whole_file(self, tmp_path_factory: Any,
                                                     rows: list[list[str]], quoting: int,
                                                     size: int, block: int) -> None:
        """Cut into partitions of any size and decoded apart, a CSV file gives the records
        and lines a single pass gives, whatever quotes, newlines and stray quotes it has,
        and wherever the blocks it is read in end (a quoted value may span them; a block
        with no quote is cut by lines, one with a quote by the csv module). Where no row
        has a stray quote, that is what the csv module reads."""
        f = tmp_path_factory.mktemp("p") / "a.csv"
        with f.open("w", encoding="utf-8", newline="") as out:
            if quoting == csv.QUOTE_NONE:  # raw text: stray quotes and broken rows
                out.write("x,y,z\n" + "".join(",".join(r).replace("\n", " ") + "\n"
                                              for r in rows))
            else:
                w = csv.writer(out, quoting=quoting)
                w.writerow(["x", "y", "z"])
                w.writerows(rows)
        reader = open_reader(f)
        whole = list(reader.partitions(10**6))  # one pass: one partition, or none
        reader.close()
        want = [item for raw in whole for item in decode(raw)]
        if not any(raw.stray for raw in whole):
            body = f.read_bytes().decode().split("\n", 1)[1]  # the csv module, after the header
            reference = csv.reader(io.StringIO(body, newline=""))
            assert want == list(_csv_records(reference, 1, 3, [("x", 0), ("y", 1), ("z", 2)]))
        reader = open_reader(f)
        default, readers._BLOCK = readers._BLOCK, block
        try:
            got = [item for raw in reader.partitions(size) for item in decode(raw)]
        finally:
            readers._BLOCK = default
            reader.close()
        assert want == got

    def test_jsonl_partitions_keep_line_numbers(self, tmp_path: Path) -> None:
        """JSONL partitions number their lines from where each starts."""
        f = tmp_path / "a.jsonl"
        f.write_text('{"a": 1}\n\n{"a": 2}\nbad\n{"a": 3}\n', encoding="utf-8")
        reader = open_reader(f)
        got = [(line, rec) for raw in reader.partitions(2) for line, rec in decode(raw)]
        reader.close()
        assert [line for line, _ in got] == [1, 3, 4, 5]
        assert got[0][1] == {"a": 1} and isinstance(got[2][1], BadRecord)
