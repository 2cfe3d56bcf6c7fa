"""How the grades of a scored X Education list line up with what really happened.

    python examples/xeducation/conversion.py scored.parquet

Reads the output of `qualify batch` (any format; it needs the ``Converted`` key column the
mapping copies) and prints, per grade and per status, how many leads there are and the share
that converted (the list's own outcome, which no rule reads).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from qualify.batch.readers import BadRecord, InputError, open_reader


def main(path: str) -> None:
    by: dict[str, dict[str, list[int]]] = {"grade": defaultdict(lambda: [0, 0]),
                                           "status": defaultdict(lambda: [0, 0])}
    try:
        reader = open_reader(Path(path))
    except InputError as e:
        raise SystemExit(f"error: {e}") from None
    for _, row in reader:
        if isinstance(row, BadRecord) or not row.get("grade"):
            continue
        won = str(row.get("Converted")) == "1"
        for column, counts in by.items():
            counts[str(row[column])][0] += 1
            counts[str(row[column])][1] += won
    reader.close()
    for column, counts in by.items():
        print(f"{column:<16}{'leads':>8}{'converted':>11}")
        for value in sorted(counts):
            n, won = counts[value]
            print(f"{value:<16}{n:>8,}{won / n:>10.1%}")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scored.parquet")
