"""A real bisect with the default oracle, its runs forked from the bisect's zygote or not.

    python benchmarks/bench_bisect_zygote.py [--commits 16] [--rounds 2]

Builds a repository whose factory turns into the mutating one halfway, then bisects it with
``harness bisect`` twice per round: with the default oracle (``harness check``, handed the
bisect's zygote: docs/bisect.md) and with the same oracle plus ``--wide``, which changes only
how it prints, so the driver hands it no zygote and each call starts its run in a fresh
interpreter. Prints each bisect's wall time, its CPU (every process of the tree, reaped),
its oracle calls and the time spent in them. Figures only; the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIO = """version: 1
server: {keepalive: {idle_timeout_ms: 5000}}
client: {kwargs: {timeout: 10, max_retries: 0}, close_request_clients: true}
session: {turns: 3, idle_between_turns_ms: 20}
"""
HEALTHY = "    return openai.OpenAI(**dict(client_kwargs))\n"
MUTATING = (
    '    client_kwargs.setdefault("http_client", openai.DefaultHttpxClient())\n'
    "    return openai.OpenAI(**client_kwargs)\n"
)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    done.check_returncode()
    return done.stdout.strip()


def build(repo: Path, commits: int) -> str:
    """The repository; returns its first commit."""
    (repo / "gateway").mkdir(parents=True)
    (repo / "gateway" / "__init__.py").write_text("")
    git(repo, "init", "-q", "-b", "main")
    for i in range(commits):
        body = HEALTHY if i < commits // 2 - 2 else MUTATING
        factory = f"import openai\n\n\ndef create_openai_client(client_kwargs, *, shared):\n{body}"
        (repo / "gateway" / "factory.py").write_text(f"{factory}# revision {i}\n")
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=d", "-c", "user.email=d@example.com", "commit", "-qm", f"c{i}")
    return git(repo, "rev-list", "--max-parents=0", "HEAD")


def bisect(repo: Path, first: str, work: Path, oracle: list[str]) -> dict[str, float]:
    reports = work / f"reports-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "harness", "bisect", "--repo", str(repo), "--good", first,
            "--bad", "HEAD", "--scenario", str(work / "s.yaml"),
            "--factory", "gateway/factory.py:create_openai_client",
            "--report-dir", str(reports), "--quiet"]  # fmt: skip
    if oracle:
        argv += ["--oracle", shlex.join(oracle)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(argv, capture_output=True, check=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    report = json.loads(next(reports.glob("bisect-*/bisect.json")).read_text())
    calls = report["oracle"]["calls"]
    oracle_s = sum(step["oracle_s"] for step in report["steps"])
    return {"wall": wall, "cpu": cpu, "calls": calls, "oracle_s": oracle_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    ns = parser.parse_args()
    unshared = [sys.executable, "-P", "-m", "harness", "check", "--wide"]
    with tempfile.TemporaryDirectory(prefix="bench-bisect-zygote-") as tmp:
        work = Path(tmp)
        (work / "s.yaml").write_text(SCENARIO)
        first = build(work / "repo", ns.commits)
        print(f"{ns.commits} commits; the 3-turn use-after-close scenario")
        print(f"{'oracle':<36} {'wall s':>7} {'CPU s':>7} {'calls':>6} {'in oracle s':>12}")
        for _ in range(ns.rounds):
            for name, oracle in (("default (forks from the zygote)", []),
                                 ("check --wide (fresh interpreters)", unshared)):  # fmt: skip
                f = bisect(work / "repo", first, work, oracle)
                print(
                    f"{name:<36} {f['wall']:>7.1f} {f['cpu']:>7.1f} "
                    f"{f['calls']:>6.0f} {f['oracle_s']:>12.1f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
