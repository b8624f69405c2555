"""docs/report-screenshot.png shows a run of the bundled set: its json (written beside it by
`nox -s screenshot`) lists the cells, compared here with the bundled scenarios' plan. No
browser is needed: the picture is checked through the metadata it was made with."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from harness.commands._common import load_all
from harness.matrix import plan

ROOT = Path(__file__).resolve().parent.parent
PNG, META = ROOT / "docs" / "report-screenshot.png", ROOT / "docs" / "report-screenshot.json"


def test_the_committed_screenshot_shows_the_bundled_scenarios_and_variants() -> None:
    meta = json.loads(META.read_text(encoding="utf-8"))
    planned = sorted(
        [c.scenario.name, c.variant] for c in plan(load_all([str(ROOT / "scenarios")]), ())
    )
    assert meta["cells"] == planned, (
        "docs/report-screenshot.png no longer shows the bundled scenarios x variants: "
        "run `nox -s screenshot` and commit the png and json"
    )


def test_the_picture_is_the_one_the_metadata_describes() -> None:
    meta = json.loads(META.read_text(encoding="utf-8"))
    head = PNG.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (meta["width"], meta["height"])
