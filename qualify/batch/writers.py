"""Write rows to CSV, JSONL or Parquet, under a temporary name renamed at the end.

Until ``commit``, rows go to a file beside the target that has no name (``AtomicFile``;
where a filesystem cannot, a hidden ``.<name>.<pid>.<random>.partial`` file). ``finish``
flushes and syncs it (where a full disk shows), ``commit`` renames it over the target in
one step; ``abort`` deletes it. An interrupted run (Ctrl-C, a crash, a kill -9) therefore
never leaves a file under the target name that looks complete, and leaves no file at all
(at worst a hidden ``.partial`` file, removed by the next run for the same target).

A write that fails (a full disk, a file-size limit, an I/O error) raises ``OutputError``,
one line naming the file, the system's words for the error and what to do.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from qualify.batch.readers import FORMATS, InputError
from qualify.batch.rows import INT_COLUMNS, Row
from qualify.errors import QualifyError

ROW_GROUP = 16_384  # Parquet rows buffered per row group (the explanation text dominates)
# what to do, by errno, when an output cannot be written
_ADVICE = {
    errno.ENOSPC: "free some space on that disk, or write --out to another one",
    errno.EDQUOT: "your disk quota is used up: free some space, or write --out elsewhere",
    errno.EFBIG: "a limit on the size of files was reached (ulimit -f, or the largest file "
                 "the filesystem holds): raise it, or write --out to another filesystem",
    errno.EROFS: "the filesystem is read-only: write --out elsewhere",
    errno.EIO: "the disk reported an I/O error: check it, or write --out elsewhere",
}
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class OutputError(QualifyError):
    """An output file could not be written: one line, with the file and what to do."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.errno = error.errno
        if error.errno:  # the system's words (pyarrow's text wraps them in its own)
            name = errno.errorcode.get(error.errno, str(error.errno))
            said = f"{os.strerror(error.errno)} ({name})"
        else:
            said = str(error).strip().splitlines()[0] if str(error).strip() else "OSError"
        advice = _ADVICE.get(error.errno or 0, "check the disk and the folder, or write "
                                                "--out elsewhere")
        super().__init__(f"cannot write {path}: {said}; {advice}")


@contextlib.contextmanager
def output_errors(path: Path) -> Iterator[None]:
    """OSError in the block -> OutputError naming ``path``."""
    try:
        yield
    except OSError as e:
        raise OutputError(path, e) from None


class Pending(Protocol):
    """A file written under a temporary name, renamed into place by ``commit``."""

    path: Path

    def finish(self) -> None: ...  # everything on disk; raises OutputError
    def commit(self) -> None: ...  # ``finish``, then the rename
    def abort(self) -> None: ...


class Writer(Pending, Protocol):
    def write(self, rows: Sequence[Row], verdicts: Sequence[str | None] | None = None) -> None:
        ...

    def write_block(self, data: Any) -> None: ...  # what ``encoder`` made of some rows


Encoder = Callable[[Sequence[Row], Sequence[str | None] | None], Any]


def encoder(fmt: str, columns: Sequence[str]) -> Encoder:
    """The function that turns rows into what a writer of ``fmt`` writes (run in workers)."""
    names = tuple(columns)
    if fmt == "csv":
        return encode_csv
    if fmt == "jsonl":
        return lambda rows, verdicts: encode_jsonl(names, rows, verdicts)
    schema = arrow_schema(names)
    return lambda rows, verdicts: encode_parquet(schema, rows)


def encode_csv(rows: Sequence[Row], verdicts: Sequence[str | None] | None = None) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def encode_jsonl(names: Sequence[str], rows: Sequence[Row],
                 verdicts: Sequence[str | None] | None = None) -> bytes:
    dumps = json.dumps
    lines = []
    for i, row in enumerate(rows):
        text = dumps(dict(zip(names, row, strict=True)), ensure_ascii=False)
        if verdicts is not None:
            text = f'{text[:-1]}, "verdict": {verdicts[i] or "null"}}}'
        lines.append(text)
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def arrow_schema(columns: Sequence[str]) -> Any:
    """``line`` and ``score`` are integers, every other column text."""
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c in INT_COLUMNS else pa.string()) for c in columns])


def encode_parquet(schema: Any, rows: Sequence[Row]) -> Any:
    import pyarrow as pa

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def open_writer(path: str | Path, columns: Sequence[str]) -> Writer:
    """A writer for ``path`` by its extension. Raises InputError (as a usage error)."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"{path}: unknown output format '{p.suffix or '(none)'}' "
                         f"(use {known})")
    if fmt == "csv":
        return CsvWriter(p, columns)
    if fmt == "jsonl":
        return JsonlWriter(p, columns)
    return ParquetWriter(p, columns)


class AtomicFile:
    """A file beside ``path`` that no one sees until ``commit`` renames it over ``path``.

    On Linux it is made with O_TMPFILE: it has no name, so a run killed with SIGKILL leaves
    nothing behind, and ``commit`` links it as ``.<name>.<pid>.<random>.partial`` and
    renames that. Where the filesystem cannot (or with ``anonymous=False``) the file has
    that name from the start. Either way the writer holds a lock on it (flock) while it
    lives, and the next ``AtomicFile`` for the same ``path`` removes such files whose
    writer is provably gone (``_remove_stale``).
    """

    def __init__(self, path: Path, anonymous: bool = True) -> None:
        self.path = path
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise InputError(f"{path}: the folder {directory} does not exist")
        if path.is_dir():
            raise InputError(f"{path}: is a directory")
        _remove_stale(directory, path.name)
        self.temp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        self._finished = False
        self._closed = False
        # mode 0o666 less the umask, as open() would give; O_EXCL: never clobber
        fd = _unnamed(directory) if anonymous else None
        self._named = fd is None
        if fd is None:
            try:
                fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except OSError as e:
                if e.errno in _NO_ROOM:
                    raise OutputError(path, e) from None
                raise InputError(f"{path}: cannot write here ({e.strerror or e})") from None
        self.fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new: no one else holds it
            self.file = os.fdopen(fd, "wb", closefd=False)
        except BaseException:
            self._close()
            if self._named:
                self.temp.unlink()
            raise

    @property
    def where(self) -> str:
        """A path that opens this file for writing (for pyarrow, which writes by name)."""
        return str(self.temp) if self._named else f"/proc/self/fd/{self.fd}"

    @contextlib.contextmanager
    def removed_on_error(self) -> Iterator[None]:
        """The rest of a writer's set-up: if it fails, the temporary file goes."""
        try:
            yield
        except BaseException:
            self.abort()
            raise

    def write(self, data: bytes) -> None:
        with output_errors(self.path):
            self.file.write(data)

    def finish(self) -> None:
        """Flush and sync the file: the data reaches the disk before any rename."""
        if self._finished:
            return
        with output_errors(self.path):
            self.file.flush()
            os.fsync(self.fd)
        self._finished = True

    def commit(self) -> None:
        self.finish()
        with output_errors(self.path):
            if not self._named:  # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd: a name at last
                directory = os.open(self.temp.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.link(f"/proc/self/fd/{self.fd}", self.temp.name, dst_dir_fd=directory)
                finally:
                    os.close(directory)
                self._named = True
            os.replace(self.temp, self.path)
        self._close()

    def abort(self) -> None:
        self._close()
        if self._named:
            with contextlib.suppress(OSError):
                self.temp.unlink()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                self.file.close()  # not the descriptor: that is closed next
            with contextlib.suppress(OSError):
                os.close(self.fd)


def _unnamed(directory: Path) -> int | None:
    """A descriptor of a new file in ``directory`` that has no name (O_TMPFILE), or None
    where that cannot be (not Linux, a filesystem without it, or no /proc to name it by)."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        fd = os.open(directory, flag | os.O_WRONLY, 0o666)
    except OSError:
        return None
    if not os.path.exists(f"/proc/self/fd/{fd}"):
        os.close(fd)
        return None
    return fd


_STALE = re.compile(r"(?P<pid>[0-9]+)\.[0-9a-f]{8}\.partial")


def _remove_stale(directory: Path, name: str) -> None:
    """Remove ``.<name>.<pid>.<random>.partial`` files left by writers that are gone: no
    process has that pid here, and no one holds the file's lock (a writer in another pid
    namespace, sharing the folder, does). Files of other names or forms are left alone."""
    prefix = f".{name}."
    try:
        entries = [e for e in os.listdir(directory) if e.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        match = _STALE.fullmatch(entry[len(prefix):])
        if match is None or _alive(int(match["pid"])):
            continue
        try:
            fd = os.open(directory / entry, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            (directory / entry).unlink()
        except OSError:  # locked: its writer lives; or already removed by another run
            continue
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, and is someone else's
        return True
    return True


class CsvWriter:
    """CSV with a header; a missing value is an empty cell."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self._temp = AtomicFile(path)
        self._detached = False
        with self._temp.removed_on_error(), output_errors(path):
            self._text = io.TextIOWrapper(self._temp.file, encoding="utf-8", newline="",
                                          write_through=False)
            self._csv = csv.writer(self._text)
            self._csv.writerow(columns)

    def write(self, rows: Sequence[Row], verdicts: Sequence[str | None] | None = None) -> None:
        with output_errors(self.path):
            self._csv.writerows(rows)

    def write_block(self, data: bytes) -> None:
        with output_errors(self.path):
            self._text.flush()
        self._temp.write(data)

    def finish(self) -> None:
        if not self._detached:  # the text layer hands the file back to the AtomicFile
            with output_errors(self.path):
                self._text.flush()
            self._text.detach()
            self._detached = True
        self._temp.finish()

    def commit(self) -> None:
        self.finish()
        self._temp.commit()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._text.detach()
        self._temp.abort()


class JsonlWriter:
    """One JSON object per row; with verdicts, each row also carries its whole verdict."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self._temp = AtomicFile(path)
        self._columns = tuple(columns)

    def write(self, rows: Sequence[Row], verdicts: Sequence[str | None] | None = None) -> None:
        self.write_block(encode_jsonl(self._columns, rows, verdicts))

    def write_block(self, data: bytes) -> None:
        self._temp.write(data)

    def finish(self) -> None:
        self._temp.finish()

    def commit(self) -> None:
        self._temp.commit()

    def abort(self) -> None:
        self._temp.abort()


class ParquetWriter:
    """Parquet through pyarrow; ``line`` and ``score`` are integers, the rest text."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self._pa = pa
        self._schema = arrow_schema(columns)
        self._temp = AtomicFile(path)
        with self._temp.removed_on_error(), output_errors(path):
            self._writer = pq.ParquetWriter(self._temp.where, self._schema)  # by name
        self._buffer: list[Any] = []
        self._buffered = 0

    def write(self, rows: Sequence[Row], verdicts: Sequence[str | None] | None = None) -> None:
        if rows:
            self.write_block(encode_parquet(self._schema, rows))

    def write_block(self, data: Any) -> None:
        if not data.num_rows:
            return
        self._buffer.append(data)
        self._buffered += data.num_rows
        if self._buffered >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            table = self._pa.Table.from_batches(self._buffer, schema=self._schema)
            with output_errors(self.path):
                self._writer.write_table(table, row_group_size=max(self._buffered, 1))
            self._buffer, self._buffered = [], 0

    def finish(self) -> None:
        self._flush()
        with output_errors(self.path):
            self._writer.close()  # the footer; a second close does nothing
        self._temp.finish()

    def commit(self) -> None:
        self.finish()
        self._temp.commit()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self._temp.abort()
