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
  A quote that opens a value and runs on over lines it should not have (see ``_stray``)
  makes its row bad, and the lines it took are read again as rows of their own.
- JSONL: one JSON object per line; NaN and Infinity are refused, as JSON itself does.
- Parquet: pyarrow, streamed by batches of rows, reading only the columns asked for.
  NaN (how pandas writes "missing") becomes missing; decimals become text.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from qualify.errors import QualifyError
from qualify.leads import parse_json

Record = dict[str, Any]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".pq": "parquet"}
PARTITION = 1000  # records per partition when a reader is iterated
_BLOCK = 1 << 16  # characters of CSV read at a time
# A line inside a quoted value that has the header's number of values is a row the quote
# swallowed, in files this wide; in narrower ones a line of prose with a comma looks the same
_ROW_LIKE_WIDTH = 3


class InputError(QualifyError):
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
    stray: tuple[tuple[int, str], ...] = ()  # CSV: (line offset in data, why) of rows with
    # a stray quote, each one line: the reader found them, the worker skips them


def decode(raw: Raw) -> list[Item]:
    """The records of a raw partition (pure; runs in the worker that scores them)."""
    if raw.kind == "csv":
        clean = _bad_bytes(raw.data) is None  # then no record needs the check
        index = list(raw.columns)
        if not raw.stray:
            reader = csv.reader(io.StringIO(raw.data, newline=""))
            return list(_csv_records(reader, raw.first - 1, raw.width, index, clean))
        lines = list(io.StringIO(raw.data, newline=""))
        out: list[Item] = []
        start = 0  # the records between rows with a stray quote are whole: parsed apart
        for offset, reason in raw.stray:
            reader = csv.reader(lines[start:offset])
            out += _csv_records(reader, raw.first - 1 + start, raw.width, index, clean)
            out.append((raw.first + offset, BadRecord(reason, _salvage(lines[offset], index))))
            start = offset + 1
        reader = csv.reader(lines[start:])
        out += _csv_records(reader, raw.first - 1 + start, raw.width, index, clean)
        return out
    if raw.kind == "jsonl":
        return list(_jsonl_records(raw.data, raw.first))
    if raw.kind == "parquet":
        return arrow_items(raw.data, raw.first)
    return list(raw.data)


def arrow_items(batch: Any, lines: int | Iterable[int]) -> list[Item]:
    """The records of an Arrow record batch, numbered from ``lines`` (an int: the first
    row's number) or by ``lines`` (one number a row). Pure: local workers call it on the
    batches of a Parquet file, Spark's Python workers on the batches ``mapInArrow`` gives."""
    numbers = range(lines, lines + batch.num_rows) if isinstance(lines, int) else lines
    return list(zip(numbers, _clean(batch).to_pylist(), strict=True))


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
    span lines: where the text has a quote character, the csv module itself finds them),
    except after a stray quote (``_stray``): that row is one line, named in ``Raw.stray``,
    and the lines after it are records again. It hands on the text of whole records;
    ``decode`` parses that text again in the worker.
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
        self._names = tuple(names)
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
        through the csv module record by record (``_Splitter``), until a record ends where
        a block does (0.28 -> 0.08 s of CPU for 200,000 records with no quotes)."""
        lines: list[str] = []  # of the records counted so far
        stray: list[tuple[int, str]] = []  # of those, the rows with a stray quote
        count, first = 0, self._first
        split = _Splitter(lambda: self._text.readlines(_BLOCK), lines, self._width,
                          self._names)

        def cut() -> Raw:
            nonlocal count, first
            raw = Raw("csv", first, "".join(lines), self._index, self._width, tuple(stray))
            first, count = first + len(lines), 0
            lines.clear()
            stray.clear()
            return raw

        while split.pending or (block := self._text.readlines(_BLOCK)):
            if not split.pending:
                if '"' not in "".join(block):
                    while block:
                        take = block[:size - count]
                        del block[:len(take)]
                        lines += take
                        count += len(take)
                        if count == size:
                            yield cut()
                    continue
                split.pending.extend(block)
            while split.pending:  # records, until one ends at a block's end
                start = len(lines)
                try:
                    why = split.record()
                except StopIteration:
                    break
                if why is not None:
                    stray.append((start, why))
                count += 1
                if count == size:
                    yield cut()
        if lines:
            yield cut()

    def close(self) -> None:
        self._text.close()


class _Splitter:
    """Records as the csv module finds them in lines read on demand, except that a record
    with a stray quote (``_stray``) is cut back to its first line, and the lines after that
    are read again. ``record`` appends the lines of one record to ``out``.

    Records are read in strict mode, which fails where a writer's quoting is broken (a
    quote followed by text, or never closed); such a record is read again as the workers
    read it (not strict), to find where it ends."""

    def __init__(self, more: Callable[[], list[str]], out: list[str], width: int,
                 names: tuple[str, ...]) -> None:
        self.pending: deque[str] = deque()  # lines read, not yet given to the csv module
        self._more, self._out, self._width, self._names = more, out, width, names
        self._readers()

    def _readers(self) -> None:
        """Readers over a new feed (after lines go back: the old feed may have ended)."""
        feed = self._feed()
        self._strict = csv.reader(feed, strict=True)
        self._lenient = csv.reader(feed)

    def _feed(self) -> Iterator[str]:
        pending, out = self.pending, self._out
        while True:
            if not pending:  # a quoted value goes on into the next block
                pending.extend(self._more())
                if not pending:
                    return
            line = pending.popleft()
            out.append(line)
            yield line

    def _back(self, start: int) -> None:
        """The lines from ``out[start]`` on go back, to be read again."""
        self.pending.extendleft(reversed(self._out[start:]))
        del self._out[start:]
        self._readers()

    def record(self) -> str | None:
        """Read one record: None, or why its row has a stray quote. StopIteration at the
        end of the input."""
        out = self._out
        start = len(out)
        row: list[str] | None
        try:
            row = next(self._strict)
            broken = False
        except csv.Error:
            broken = True
            self._back(start)
            try:
                row = next(self._lenient)
            except csv.Error:  # on one line: the worker meets it too, and says so
                row = None
        if len(out) - start < 2:
            return None
        why = _stray(out[start:], row, broken, self._width, self._names)
        if why is not None:
            self._back(start + 1)
        return why


def _fits(row: list[str], width: int) -> bool:
    """The header's number of values (empty values beyond it are a trailing comma)."""
    return len(row) == width or (len(row) > width and not any(c.strip() for c in row[width:]))


def _alone(line: str, **dialect: Any) -> list[str]:
    """The values of one line read by itself."""
    return next(csv.reader([line], **dialect), [])


def _stray(lines: list[str], row: list[str] | None, broken: bool, width: int,
           names: tuple[str, ...]) -> str | None:
    """Why a record over several ``lines`` (``row``, None if the csv module gave up on it;
    ``broken``: its quoting is not a writer's) is a row whose first line has a stray
    quote, or None for a quoted value that spans lines. A writer never writes what the
    first three tests find (no row, broken quoting, the wrong number of values). The
    fourth finds a quote closed as a writer would close it, by another stray one at the
    end of a value: the first line, without its quote, and a line after it each read as a
    whole row."""
    if row is not None and not broken and _fits(row, width) and (
            width < _ROW_LIKE_WIDTH or lines[0].count(",") < width - 1
            or not _fits(_unquoted(lines[0]), width)
            or not any(_fits(_alone(line), width) for line in lines[1:])):
        return None
    opened = len(_alone(lines[0])) - 1  # the value the quote opened: the line's last
    column = f"column '{names[opened]}'" if opened < len(names) else f"value {opened + 1}"
    took = f"{len(lines) - 1:,} line{'s' if len(lines) > 2 else ''}"
    return (f"stray quote: a quote opens the value of {column} and is not closed on its "
            f"line (it took the next {took} with it; they are read as rows of their own); "
            'quote the whole value and write a quote inside it as ""')


def _unquoted(line: str) -> list[str]:
    """The values of a line with a stray quote, read as if that quote were not there."""
    values = _alone(line)
    rest = values.pop() if values else ""
    return values + _alone(rest.rstrip("\r\n"), quoting=csv.QUOTE_NONE)


def _salvage(line: str, index: list[tuple[str, int]]) -> Record:
    """What can be read of a line with a stray quote, for the key columns of its row."""
    values = _unquoted(line)
    return {n: values[i] for n, i in index if i < len(values) and _bad_bytes(values[i]) is None}


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
        if len(row) != width and not _fits(row, width):
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
                if batch.num_columns:
                    yield Raw("parquet", first, batch)
                else:  # unpickled, an Arrow batch with no columns has no rows either
                    yield raw_items([(first + i, {}) for i in range(batch.num_rows)])
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
