"""Helpers for the HTML reports: the tags a page holds, and how wide it lays out in
headless Chromium at a given window size.

``Tags`` collects every tag and its attributes, to check what a page would load.
``widths(page)`` copies the page, adds a script that writes, once laid out, the document's
scroll width and the widest overflow of any element that scrolls sideways into the title,
and reads that back from ``chromium --dump-dom``. None when no Chromium is installed (the
tests then skip). The reports themselves carry no script: only the copy does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

WIDTH = 1280
PROBE = """<script>addEventListener("load", () => {
  const de = document.documentElement;
  let inner = 0;
  for (const e of document.querySelectorAll("*")) {
    if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible")
      inner = Math.max(inner, e.scrollWidth - e.clientWidth);
  }
  document.title = `PAGE ${de.scrollWidth} ${de.clientWidth} ${inner}`;
});</script>"""


class Tags(HTMLParser):
    """Collects every tag and attribute, to check what the page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def widths(page: Path, tmp: Path, width: int = WIDTH) -> tuple[int, int, int] | None:
    """(scroll width, client width, widest inner sideways overflow) of ``page`` laid out in
    a ``width``-px window; None without Chromium."""
    exe = chromium()
    if exe is None:
        return None
    probe = tmp / f"probe-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")
    out = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp / 'chromium-profile'}", f"--window-size={width},1400",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r"<title>PAGE (\d+) (\d+) (\d+)</title>", out)
    assert found, out[:500]
    return int(found[1]), int(found[2]), int(found[3])
