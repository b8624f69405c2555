"""Render a run's report.html in headless Chromium into docs/report-screenshot.png.

    python docs/screenshot.py REPORTS/RUN-ID   (nox -s screenshot runs a fresh regress first)

Beside the picture it writes docs/report-screenshot.json: the run id and the scenario x
variant cells the picture shows. tests/test_docs_screenshot.py compares those cells with the
bundled scenarios' plan, so the picture cannot silently fall behind the bundled set (the test
reads the json: CI needs no browser). The page is measured too: at a 1280 px window its
scrollWidth must not exceed the window, no table may scroll sideways and no overview cell's
text may be wider than the cell, or this exits 1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.report import load_summary

DOCS = Path(__file__).resolve().parent
PNG, META = DOCS / "report-screenshot.png", DOCS / "report-screenshot.json"
WIDTH, HEIGHT = 1280, 1600
MEASURE = (  # the page's widths, how many tables scroll sideways inside their box, and how
    # many overview headers and cells hold text wider than their box (it would spill over)
    "<script>const over = e => e.scrollWidth > e.clientWidth;"
    "document.body.setAttribute('data-scroll', "
    "document.documentElement.scrollWidth + '/' + document.documentElement.clientWidth + '/' + "
    "Array.from(document.querySelectorAll('.fit')).filter(over).length + '/' + "
    "Array.from(document.querySelectorAll('table.grid th, table.grid td a')).filter(over).length)"
    "</script>"
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium on PATH; install it (apt-get install -y chromium) and run again")


def _browser(*args: str) -> str:
    argv = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--window-size={WIDTH},{HEIGHT}", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=True).stdout


def scroll_width(page: Path) -> tuple[int, int, int, int]:
    """(scrollWidth, clientWidth, tables wider than their box, overview cells whose text is
    wider than their box) of ``page`` at WIDTH px."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(page.read_text(encoding="utf-8") + MEASURE, encoding="utf-8")
        dom = _browser("--dump-dom", probe.as_uri())
    found = re.search(r'data-scroll="(\d+)/(\d+)/(\d+)/(\d+)"', dom)
    if found is None:
        sys.exit(f"could not measure {page}: no data-scroll in Chromium's DOM")
    wide, window, cut, spill = (int(x) for x in found.groups())
    return wide, window, cut, spill


def main(run_dir: Path) -> int:
    page, results = run_dir / "report.html", run_dir / "results.json"
    summary = load_summary(results)
    wide, window, cut, spill = scroll_width(page)
    print(
        f"{page}: scrollWidth {wide} px in a {window} px window; {cut} tables scroll sideways; "
        f"{spill} overview cells spill over"
    )
    _browser(f"--screenshot={PNG}", page.resolve().as_uri())
    cells = sorted({(e.scenario, e.variant) for e in summary.entries})
    meta = {"run_id": summary.run_id, "width": WIDTH, "height": HEIGHT, "cells": cells}
    META.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {PNG} and {META} ({len(cells)} cells)")
    return 0 if wide <= window and cut == 0 and spill == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]).resolve()))
