"""Writers: what is written reads back the same; nothing appears under the name until commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qualify.batch.readers import InputError, open_reader
from qualify.batch.writers import open_writer

COLUMNS = ("line", "lead_id", "score", "explanation", "error")
ROWS = [(2, "a", 70, "first\nsecond, with a comma", None),
        (3, "北京", None, None, "budget: expected a number, got 'lots'")]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class TestRoundTrip:
    @pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
    def test_rows_read_back(self, tmp_path: Path, ext: str) -> None:
        """Rows written in each format read back with the same values (CSV: as text)."""
        path = tmp_path / f"out.{ext}"
        w = open_writer(path, COLUMNS)
        w.write(ROWS[:1])
        w.write(ROWS[1:])
        w.commit()
        reader = open_reader(path)
        got = [record for _, record in reader]
        reader.close()
        if ext == "csv":
            expected = [{c: "" if v is None else str(v) for c, v in zip(COLUMNS, r, strict=True)}
                        for r in ROWS]
        else:
            expected = [dict(zip(COLUMNS, r, strict=True)) for r in ROWS]
        assert expected == got

    def test_jsonl_carries_the_verdict(self, tmp_path: Path) -> None:
        """A JSONL row ends with its whole verdict (null for a failed row)."""
        path = tmp_path / "out.jsonl"
        w = open_writer(path, COLUMNS)
        w.write(ROWS, ['{"status": "qualified"}', None])
        w.commit()
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        assert lines[0]["verdict"] == {"status": "qualified"} and lines[1]["verdict"] is None


class TestAtomic:
    @pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
    def test_nothing_in_the_folder_until_commit(self, tmp_path: Path, ext: str) -> None:
        """Before commit the file has no name at all (O_TMPFILE), not even a hidden one, so
        a run killed with SIGKILL leaves nothing; abort leaves nothing either."""
        path = tmp_path / f"out.{ext}"
        w = open_writer(path, COLUMNS)
        w.write(ROWS)
        assert files(tmp_path) == []
        w.abort()
        assert files(tmp_path) == []

    def test_commit_replaces_an_old_file_whole(self, tmp_path: Path) -> None:
        """An existing output is replaced in one rename, with ordinary permissions."""
        path = tmp_path / "out.csv"
        path.write_text("old\n", encoding="utf-8")
        w = open_writer(path, COLUMNS)
        w.write(ROWS)
        assert path.read_text(encoding="utf-8") == "old\n"
        w.commit()
        assert path.read_text(encoding="utf-8").startswith("line,lead_id")
        assert files(tmp_path) == ["out.csv"]
        assert path.stat().st_mode & 0o644 == 0o644

    def test_a_missing_folder_is_an_input_error(self, tmp_path: Path) -> None:
        """Writing into a folder that does not exist fails before any work, on one line."""
        with pytest.raises(InputError, match="does not exist"):
            open_writer(tmp_path / "nope" / "out.csv", COLUMNS)
