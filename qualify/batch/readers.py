"""Read records from CSV, JSONL or Parquet, each with the line it came from.

A reader cuts its file into ``Raw`` partitions (CSV text of whole records, JSONL lines, an
Arrow batch): cheap for the process that reads, picklable, and turned into records by
``decode`` in the worker that scores them. Iterating a reader decodes in place.

A reader never stops at a bad row: a row it cannot read becomes a ``BadRecord`` with the
reason, in its place, so the output keeps one row per input row. Only a file that cannot be
read at all (missing, not UTF-8 in its header, not Parquet) raises ``InputError``.

- CSV: the standard library's C parser. It gives the physical line each record starts on
  (quoted values may span lines) and reads past a broken row; pyarrow's CSV reader does
  neither, and infers column types per block. Bytes that are not UTF-8 make that row bad.
- JSONL: one JSON object per line; NaN and Infinity are refused, as JSON itself does.
- Parquet: pyarrow, streamed by batches of rows, reading only the columns asked for.
  NaN (how pandas writes "missing") becomes missing; decimals become text.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from qualify.leads import parse_json

Record = dict[str, Any]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".pq": "parquet"}
PARTITION = 1000  # records per partition when a reader is iterated
_BLOCK = 1 << 16  # characters of CSV read at a time


class InputError(Exception):
    """A file cannot be read at all. The message is one line, naming the file."""


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A row that could not be read, and what could be read of it (for key columns)."""

    reason: str
    fields: Record = field(default_factory=dict)


Item = tuple[int, Record | BadRecord]  # (line, or row number for Parquet; the record)


@dataclass(frozen=True, slots=True)
class Raw:
    """Some records as read from the file, not yet decoded."""

    kind: Literal["csv", "jsonl", "parquet", "items"]
    first: int  # the line (Parquet: row) the first record starts on
    data: Any  # CSV text | JSONL lines (bytes) | Arrow RecordBatch | decoded items
    columns: tuple[tuple[str, int], ...] = ()  # CSV: (name, position) of the columns kept
    width: int = 0  # CSV: the header's number of values


def decode(raw: Raw) -> list[Item]:
    """The records of a raw partition (pure; runs in the worker that scores them)."""
    if raw.kind == "csv":
        reader = csv.reader(io.StringIO(raw.data, newline=""))
        clean = _bad_bytes(raw.data) is None  # then no record needs the check
        return list(_csv_records(reader, raw.first - 1, raw.width, list(raw.columns), clean))
    if raw.kind == "jsonl":
        return list(_jsonl_records(raw.data, raw.first))
    if raw.kind == "parquet":
        return list(enumerate(_clean(raw.data).to_pylist(), raw.first))
    return list(raw.data)


def raw_items(partition: list[Item]) -> Raw:
    """Records already read, as a partition (for tests, and callers with their own source)."""
    return Raw("items", partition[0][0] if partition else 1, partition)


class Reader(Protocol):
    path: Path
    columns: tuple[str, ...]  # top-level names (CSV header, Parquet schema; JSONL: none)

    def select(self, names: Iterable[str]) -> None: ...
    def partitions(self, size: int) -> Iterator[Raw]: ...  # about ``size`` records each
    def __iter__(self) -> Iterator[Item]: ...
    def progress(self) -> tuple[int, int]: ...  # (done, total), in bytes or rows
    def close(self) -> None: ...


class _Decoding(ABC):
    """``__iter__`` for readers: their partitions, decoded here."""

    @abstractmethod
    def partitions(self, size: int) -> Iterator[Raw]:
        """The input cut into partitions of ``size`` records, not yet decoded."""

    def __iter__(self) -> Iterator[Item]:
        for raw in self.partitions(PARTITION):
            yield from decode(raw)


class _FileReader(_Decoding):
    """A reader of a text file: progress is the byte offset in it."""

    _raw: BinaryIO
    _total: int

    def progress(self) -> tuple[int, int]:
        try:
            return self._raw.tell(), self._total
        except (OSError, ValueError):
            return self._total, self._total


def format_of(path: str | Path) -> str:
    """csv, jsonl or parquet, by the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"{path}: unknown format '{suffix or '(none)'}' (use {known})")
    return FORMATS[suffix]


def open_reader(path: str | Path) -> Reader:
    """A reader for ``path`` by its extension. Raises InputError."""
    p = Path(path)
    fmt = format_of(p)
    if fmt == "csv":
        return CsvReader(p)
    if fmt == "jsonl":
        return JsonlReader(p)
    return ParquetReader(p)


def _open_binary(path: Path) -> BinaryIO:
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a directory")
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _bad_bytes(text: str) -> str | None:
    """None if ``text`` came from valid UTF-8, else a description of the first bad byte."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        ch = text[e.start]
        code = ord(ch)
        byte = f"0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else repr(ch)
        return f"not UTF-8 text (byte {byte})"
    return None


class CsvReader(_FileReader):
    """CSV with a header row. Columns with an empty name (a trailing comma) are ignored.

    ``partitions`` finds where records end as the csv module does (a quoted value may
    span lines, and a stray quote in a value is read as the csv module reads it: where the
    text has a quote character, the csv module itself finds them) and hands on the text of
    whole records; ``decode`` parses that text again in the worker.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw = _open_binary(path)
        self._total = _size(path)
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", errors="surrogateescape",
                                      newline="")
        head = csv.reader(self._text)
        try:
            header = next(head)
        except StopIteration:
            self.close()
            raise InputError(f"{path}: empty file (a header row is needed)") from None
        except (csv.Error, UnicodeError) as e:
            self.close()
            raise InputError(f"{path}:1: cannot read the header: {e}") from None
        bad = _bad_bytes("".join(header))
        if bad:
            self.close()
            raise InputError(f"{path}:1: the header is {bad}; save the file as UTF-8")
        names = [h.strip() for h in header]
        seen: set[str] = set()
        for n in names:
            if n and n in seen:
                self.close()
                raise InputError(f"{path}:1: column '{n}' appears twice in the header")
            seen.add(n)
        self.columns = tuple(n for n in names if n)
        self._width = len(names)
        self._index = tuple((n, i) for i, n in enumerate(names) if n)
        self._first = head.line_num + 1

    def select(self, names: Iterable[str]) -> None:
        """Build records with only these columns (the others are never read into dicts)."""
        wanted = set(names)
        self._index = tuple((n, i) for n, i in self._index if n in wanted)

    def partitions(self, size: int) -> Iterator[Raw]:
        """Text of ``size`` records at a time. Lines are read in blocks; in a block with
        no quote character each line is one record, and the blocks that have one go
        through the csv module record by record, until a record ends where a block does
        (0.28 -> 0.08 s of CPU for 200,000 records with no quotes)."""
        lines: list[str] = []  # of the records counted so far
        count, first = 0, self._first
        queue: deque[str] = deque()  # lines read for the csv module, not yet given to it

        def feed() -> Iterator[str]:
            while True:
                if not queue:  # a quoted value goes on into the next block
                    queue.extend(self._text.readlines(_BLOCK))
                    if not queue:
                        return
                line = queue.popleft()
                lines.append(line)
                yield line

        reader = csv.reader(feed())
        while block := self._text.readlines(_BLOCK):
            if '"' not in "".join(block):
                while block:
                    take = block[:size - count]
                    del block[:len(take)]
                    lines += take
                    count += len(take)
                    if count == size:
                        yield Raw("csv", first, "".join(lines), self._index, self._width)
                        first, count = first + len(lines), 0
                        lines.clear()
                continue
            queue.extend(block)
            while queue:  # the csv module's records, until one ends at a block's end
                try:
                    next(reader)
                except StopIteration:
                    break
                except csv.Error:
                    pass  # the worker meets the same error on the same text, and reports it
                count += 1
                if count == size:
                    yield Raw("csv", first, "".join(lines), self._index, self._width)
                    first, count = first + len(lines), 0
                    lines.clear()
        if lines:
            yield Raw("csv", first, "".join(lines), self._index, self._width)

    def close(self) -> None:
        self._text.close()


def _csv_records(reader: Any, base: int, width: int, index: list[tuple[str, int]],
                 clean: bool = False) -> Iterator[Item]:
    """Records from a csv reader whose first line is line ``base + 1`` of the file.
    ``clean``: the text is known to hold no bytes that were not UTF-8."""
    last = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield base + last + 1, BadRecord(f"cannot parse the CSV: {e}")
            last = reader.line_num
            continue
        line, last = base + last + 1, reader.line_num
        if not row:
            continue  # a blank line
        if len(row) != width:
            extra = row[width:]
            if len(row) < width or any(c.strip() for c in extra):
                yield line, BadRecord(f"{len(row)} values, but the header has {width}",
                                      _fields(row, index))
                continue
        bad = None if clean else _bad_bytes("".join(row))
        if bad:
            yield line, BadRecord(bad)
            continue
        yield line, {n: row[i] for n, i in index}


def _fields(row: list[str], index: list[tuple[str, int]]) -> Record:
    return {n: row[i] for n, i in index if i < len(row) and _bad_bytes(row[i]) is None}


class JsonlReader(_FileReader):
    """One JSON object per line; blank lines are skipped. Workers parse the JSON."""

    columns: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw = _open_binary(path)
        self._total = _size(path)

    def select(self, names: Iterable[str]) -> None:
        """JSON payloads are nested; every key is kept."""

    def partitions(self, size: int) -> Iterator[Raw]:
        lines: list[bytes] = []
        first = 1
        for line in self._raw:
            lines.append(line)
            if len(lines) >= size:
                yield Raw("jsonl", first, lines)
                first += len(lines)
                lines = []
        if lines:
            yield Raw("jsonl", first, lines)

    def close(self) -> None:
        self._raw.close()


def _jsonl_records(lines: list[bytes], first: int) -> Iterator[Item]:
    for number, raw in enumerate(lines, first):
        data = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
        if not data.strip():
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            yield number, BadRecord(f"not UTF-8 text (byte 0x{data[e.start]:02x})")
            continue
        try:
            doc = parse_json(text)
        except ValueError as e:  # JSONDecodeError is a ValueError
            yield number, BadRecord(f"invalid JSON: {e}")
            continue
        except RecursionError:
            yield number, BadRecord("invalid JSON: nested too deeply")
            continue
        if not isinstance(doc, dict):
            kind = "a list" if isinstance(doc, list) else type(doc).__name__
            yield number, BadRecord(f"a lead must be a JSON object, got {kind}")
            continue
        yield number, doc


class ParquetReader(_Decoding):
    """A Parquet file, read by batches of rows (Arrow, shipped as is to the workers, which
    turn them into records). Row numbers count from 1."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        if path.is_dir():
            raise InputError(f"{path}: is a directory")
        try:
            self._file = pq.ParquetFile(path)
        except FileNotFoundError:
            raise InputError(f"{path}: No such file or directory") from None
        except (OSError, pa.ArrowException) as e:
            raise InputError(f"{path}: not a readable Parquet file ({_first_line(e)})") from None
        self.columns = tuple(self._file.schema_arrow.names)
        self._selected: list[str] | None = None
        self._done = 0

    def select(self, names: Iterable[str]) -> None:
        wanted = set(names)
        self._selected = [n for n in self.columns if n in wanted]

    def partitions(self, size: int) -> Iterator[Raw]:
        import pyarrow as pa

        first = 1
        try:
            for batch in self._file.iter_batches(batch_size=size, columns=self._selected):
                yield Raw("parquet", first, batch)
                first += batch.num_rows
                self._done = first - 1
        except (OSError, pa.ArrowException) as e:
            raise InputError(f"{self.path}: row {first}: cannot read the Parquet file "
                             f"({_first_line(e)})") from None

    def progress(self) -> tuple[int, int]:
        return self._done, self._file.metadata.num_rows

    def close(self) -> None:
        self._file.close()


def _clean(batch: Any) -> Any:
    """NaN -> null (pandas writes missing numbers as NaN); decimals -> text (exact)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    changed = False
    for column in batch.columns:
        col, t = column, column.type
        if pa.types.is_floating(t) and col.null_count < len(col):
            nan = pc.is_nan(col)
            if pc.any(nan).as_py():
                col = pc.if_else(nan, pa.scalar(None, t), col)
                changed = True
        elif pa.types.is_decimal(t):
            col = col.cast(pa.string())
            changed = True
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names) if changed else batch


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
