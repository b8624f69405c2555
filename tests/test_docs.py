"""The docs cannot drift: their examples run, and their field lists are the real fields.

Examples: every fenced block marked ```` ```console ```` in README.md and docs/*.md is run.
A line starting with ``$ python -m harness`` is a command (other ``$`` lines, such as
``pip install``, are shown only); the lines after it, up to the next command, are its output
(stdout and stderr together) and must match, after both sides have wall times, run ids,
ports and the report folder's path replaced by placeholders. In the shown output, ``<n>``
stands for any whole number (a count that depends on the machine, such as open fds), a line
ending in ``...`` for any rest of that line, and a line that is only ``...`` for any lines.
Commands run in a temporary folder that holds the bundled ``scenarios/`` plus the files in
:data:`FILES`, off a terminal (the stable output format).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.environment import fingerprint
from harness.holders import Holder
from harness.report import load_summary
from harness.result import ServerStats

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```console\n(.*?)^```", re.M | re.S)


def _results_with(**run: object) -> str:
    """The golden results.json with the first run's fields replaced by ``run``."""
    data = json.loads((ROOT / "tests" / "data" / "results.json").read_text(encoding="utf-8"))
    data["entries"][0]["runs"][0].update(run)
    return json.dumps(data)


FILES = {"scenarios/bad.yaml": "version: 1\nserver:\n  latency_ms: 0\nclient: {}\n"
         "session:\n  stream: false\n  turns: 0\n",
         # docs/import.md's trace, and one with a bad line
         "gateway.jsonl": (ROOT / "tests" / "data" / "import" / "gateway.jsonl").read_text(),
         "broken.jsonl": '{"ts": 1796119200, "duration_ms": 5}\n{"ts": "yesterday"}\n',
         # docs/scenarios.md's absurd plan, docs/reports.md's results.json that breaks schema 1
         "long.yaml": "version: 1\nsession: {turns: 100000, idle_between_turns_ms: 3600000}\n",
         "r.json": _results_with(errors="3")}  # fmt: skip
VOLATILE = (
    (re.compile(r"\b\d+\.\d+ s\b"), "<time> s"),
    (re.compile(r"\b\d+ ms\b"), "<time> ms"),
    (re.compile(r"\b\d{8}T\d{6,9}Z-\w+"), "<run-id>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"^reports: .*$", re.M), "reports: <folder>"),
)


def _examples() -> list[tuple[str, str, list[str]]]:
    """(where, command, shown output lines) for every command in a console block."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in FENCE.finditer(text):
            line_no = text[: block.start()].count("\n") + 1
            command, shown = "", []
            for line in [*block.group(1).splitlines(), "$ "]:
                if line.startswith("$ "):
                    if command.startswith("python -m harness "):
                        found.append((f"{doc.name}:{line_no}", command, shown))
                    command, shown = line[2:], []
                else:
                    shown.append(line)
    return found


def _normal(text: str) -> str:
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def _pattern(shown: list[str]) -> re.Pattern[str]:
    parts = []
    for line in _normal("\n".join(shown)).split("\n"):
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        rest = line.endswith("...")
        body = re.escape(line.removesuffix("...") if rest else line)
        body = re.sub(r"(?:\\ )*<n>", lambda _: r" *\d+", body)  # right-aligned: any width
        parts.append(body + (r"[^\n]*" if rest else "") + r"\n")
    return re.compile("".join(parts), re.S)


EXAMPLES = _examples()


def test_the_docs_have_runnable_examples() -> None:
    assert len(EXAMPLES) >= 3, EXAMPLES


@pytest.mark.parametrize(("where", "command", "shown"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_a_documented_command_prints_what_the_docs_show(
    where: str, command: str, shown: list[str], tmp_path: Path
) -> None:
    (tmp_path / "scenarios").mkdir()
    for bundled in (ROOT / "scenarios").glob("*.yaml"):
        (tmp_path / "scenarios" / bundled.name).symlink_to(bundled)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}  # keep the order
    for name in ("COLUMNS", "GITHUB_STEP_SUMMARY"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "harness", *shlex.split(command)[3:]]
    done = subprocess.run(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)  # fmt: skip
    out = _normal(done.stdout)
    assert _pattern(shown).fullmatch(out), f"{where}: `{command}` printed:\n{done.stdout}"


# ---- documented field lists against the real values ---------------------------------------


def _tables(doc: Path) -> dict[str, set[str]]:
    """heading -> the backticked names in the first column of the field table under it."""
    tables: dict[str, set[str]] = {}
    heading = ""
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = line.lstrip("# ").strip()
        elif line.startswith("| `") and heading:
            first = line.split("|")[1]
            tables.setdefault(heading, set()).update(re.findall(r"`([a-z_0-9]+)`", first))
    return tables


def test_reports_md_lists_every_results_json_field_and_no_other() -> None:
    tables = _tables(ROOT / "docs" / "reports.md")
    data = load_summary(ROOT / "tests" / "data" / "results.json").to_dict()
    entry, run = data["entries"][0], data["entries"][0]["runs"][0]
    assert tables["results.json (schema 1)"] == {*data, "shard"}  # shard: only in a shard's
    assert tables["`entries[]`"] == {*entry, "line"}  # line: only in a combined report
    assert tables["`entries[].verdicts[]`"] == set(entry["verdicts"][0])
    assert tables["`entries[].runs[]`"] == set(run)
    assert tables["`entries[].runs[].server`"] == set(run["server"])
    held = Holder(1, 1, 0, 1, "httpx.Client").to_dict()  # samples carry them with --attribute
    assert tables["`entries[].runs[].samples[].held_by[]`"] == set(held)


def test_reports_md_names_every_fingerprint_key() -> None:
    text = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `environment` |"))
    named = set(re.findall(r"`([a-z_0-9]+)`", row.split("|")[3]))
    assert named == {*fingerprint(), "target_commit"}


def test_pytest_md_names_real_server_stats_fields() -> None:
    text = (ROOT / "docs" / "pytest.md").read_text(encoding="utf-8")
    listed = re.search(r"`ServerStats`: (.*?)\) and", text, re.S)
    assert listed is not None
    named = set(re.findall(r"`([a-z_]+)`", listed.group(1)))
    fields = {f.name for f in dataclasses.fields(ServerStats)}
    assert named - {"retries"} == fields
    assert isinstance(ServerStats.retries, property)
