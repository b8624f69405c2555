"""What ``bisect --install`` spends installing, against one install.

    python benchmarks/bench_bisect_install.py [--deps 100] [--commits 32] [--keep DIR]

Builds ``--deps`` tiny wheels in a local folder (no network) and a repository of ``--commits``
commits whose ``requirements.txt`` pins all of them, then runs the real ``harness bisect``
with ``--install '<installer> install --no-index --find-links WHEELS -r requirements.txt'``
and a fast oracle (a script that reads the commit's index: the oracle's cost is not the
point). Rows: pip and uv (when on PATH) with the dependency files never changing, with one
change halfway, and with ``--install-always`` (an install at every commit: what the harness did
before). The figure: seconds spent installing over all oracle calls, divided by the seconds of
one install (the first call's). Target: at most 1.5 for a 5-step bisect whose dependency files
do not change. Figures only, no pass/fail; the machine is shared.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ORACLE = """\
import pathlib, sys
args = sys.argv[1:]
root = pathlib.Path(args[args.index("--root") + 1])
sys.exit(1 if int((root / "INDEX").read_text()) >= int((root / "FIRST_BAD").read_text()) else 0)
"""


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "B", "GIT_AUTHOR_EMAIL": "b@example.com"}
    env |= {"GIT_COMMITTER_NAME": "B", "GIT_COMMITTER_EMAIL": "b@example.com", "PATH": "/usr/bin"}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def wheel(folder: Path, name: str, version: str) -> None:
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record += f"{path},sha256={digest.decode()},{len(text.encode())}\n"
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)


def build(root: Path, deps: int, commits: int, change_at: int | None) -> list[str]:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    shas = []
    for i in range(commits):
        pin = "1.1" if change_at is not None and i >= change_at else "1.0"
        reqs = "".join(f"benchdep{d:03d}=={pin}\n" for d in range(deps))
        (repo / "requirements.txt").write_text(reqs, encoding="utf-8")
        (repo / "INDEX").write_text(str(i), encoding="utf-8")
        (repo / "FIRST_BAD").write_text(str(commits // 2 + 3), encoding="utf-8")
        git(repo, "add", "-A")
        git(repo, "commit", "--quiet", "-m", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    return shas


def run(root: Path, shas: list[str], install: str, *extra: str) -> dict[str, Any]:
    reports = root / "reports"
    shutil.rmtree(reports, ignore_errors=True)
    (root / "s.yaml").write_text("version: 1\n", encoding="utf-8")
    (root / "oracle.py").write_text(ORACLE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bisect", "--repo", str(root / "repo"),
         "--good", shas[0], "--bad", shas[-1], "--scenario", str(root / "s.yaml"),
         "--factory", "unused:f", "--oracle", f"{sys.executable} {root / 'oracle.py'}",
         "--install", install, "--report-dir", str(reports), "--quiet", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bisect failed ({done.returncode}): {done.stdout}{done.stderr}")
    path = next(reports.glob("bisect-*/bisect.json"))
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report


def row(name: str, report: dict[str, Any]) -> str:
    steps = report["steps"]
    ran = [s for s in steps if s["install"] == "ran"]
    one = ran[0]["install_s"]
    total = sum(s["install_s"] for s in steps)
    return (
        f"| {name} | {report['oracle']['bisect_calls']} + 2 | {len(ran)} | {one:.2f} "
        f"| {total:.2f} | {total / one:.2f} | {report['timings']['venv_s']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deps", type=int, default=100)
    parser.add_argument("--commits", type=int, default=32)
    parser.add_argument("--keep", type=Path, help="keep the repositories here")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-bisect-install-"))
    wheels = base / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for d in range(args.deps):
        wheel(wheels, f"benchdep{d:03d}", "1.0")
        wheel(wheels, f"benchdep{d:03d}", "1.1")
    installers = {"pip": '"$HARNESS_PYTHON" -m pip install -q --disable-pip-version-check'}
    if shutil.which("uv"):
        installers["uv"] = "uv pip install -q"
    print(f"{args.deps} dependencies, {args.commits} commits (search steps + 2 bounds)\n")
    print("| installer, dependency files | oracle calls | installs | one install s "
          "| installing s | ratio | venv build s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    try:
        for change_at, what in ((None, "never change"), (args.commits // 4, "change once")):
            root = base / what.replace(" ", "-")
            root.mkdir(exist_ok=True)
            shas = build(root, args.deps, args.commits, change_at)
            for name, command in installers.items():
                install = f"{command} --no-index --find-links {wheels} -r requirements.txt"
                print(row(f"{name}, {what}", run(root, shas, install)), flush=True)
                if change_at is None:
                    always = run(root, shas, install, "--install-always")
                    print(row(f"{name}, --install-always", always), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
