"""No secret from the environment in anything the harness writes or prints (harness.redact).

Each test plants unique random values in the environment of real ``python -m harness``
processes (and in bisect's ``--env``), runs the commands, then searches every file under its
``tmp_path`` (report folders, the bisect run folder, ``TMPDIR``) and every byte of their
stdout and stderr: no planted value may appear. The factories are adversarial on purpose:
one makes the SDK send the key as its ``Authorization`` header to the mock server, one puts
the key into an exception message and on its stderr before the worker dies.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.bisect import git as g

# What reaches a file or the output depends on how each SDK line words its errors and sends
# its headers: every line runs the tests of what the code under test produces (`sdk`); how
# regress, report --merge and bisect carry it on runs once (docs/testing.md).

# The SDK reads OPENAI_API_KEY when no api_key is given: the planted key goes out on every
# request as "Authorization: Bearer <key>", to the mock server on 127.0.0.1.
ENV_KEY = """\
import os

import openai


def make(client_kwargs, *, shared):
    kwargs = {k: v for k, v in client_kwargs.items() if k != "api_key"}
    client = openai.OpenAI(**kwargs)
    assert client.auth_headers == {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
    return client
"""

# The first request client raises with the key in its message; the second prints the key on
# stderr and kills the worker, so the run's detail is that stderr line.
LEAKY = """\
import os
import sys

import openai

made = 0


def make(client_kwargs, *, shared):
    global made
    if shared:
        return openai.OpenAI(**client_kwargs)
    made += 1
    key = os.environ["OPENAI_API_KEY"]
    if made == 1:
        raise RuntimeError(f"refusing key {key}")
    print(f"leaky factory sees {key}", file=sys.stderr, flush=True)
    os._exit(1)
"""

# The mutating factory of issue 11070, with the key from the environment as well.
MUTATING = ENV_KEY.replace(
    "    client = openai.OpenAI(**kwargs)\n",
    "    if 'http_client' not in client_kwargs:\n"
    "        client_kwargs['http_client'] = openai.DefaultHttpxClient()\n"
    "    kwargs['http_client'] = client_kwargs['http_client']\n"
    "    client = openai.OpenAI(**kwargs)\n",
)

# A later revision that also fails with an --env value of a harmless-looking name in its
# error: the oracle's check.json holds it until bisect scrubs it (harness.redact.given_values).
MODE_IN_ERROR = ENV_KEY.replace(
    "    return client\n",
    "    if not shared:\n"
    "        raise RuntimeError('gateway mode ' + os.environ['GATEWAY_MODE'])\n"
    "    return client\n",
)

SCENARIO = """\
version: 1
name: secrets
client:
  kwargs: {max_retries: 0, timeout: 5}
  close_request_clients: true
session:
  turns: 2
  idle_between_turns_ms: 0
expect:
  errors: 0
variants:
  envkey.py:make: pass
  leaky.py:make: fail
"""


@dataclass(frozen=True)
class Planted:
    """Values planted for one test, the environment holding them, and what was seen."""

    values: dict[str, str]  # name -> value; every value must stay unwritten and unprinted
    env: dict[str, str]
    root: Path
    outputs: list[bytes]

    def harness(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "harness", *map(str, args)])

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv,
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,  # a bound against a hang, not a speed check
            check=False,
        )
        self.outputs.extend([done.stdout.encode(), done.stderr.encode()])
        return done

    def assert_nowhere(self) -> None:
        """No planted value in any file under ``root`` nor in any output seen."""
        files = list(_files(self.root))
        assert len(files) > 5  # the search covers what the commands wrote
        hits = [
            f"{name} in {where}"
            for where, data in [*((str(p), p.read_bytes()) for p in files), *_outs(self.outputs)]
            for name, value in self.values.items()
            if value.encode() in data
        ]
        assert hits == []


def _files(root: Path) -> Iterable[Path]:
    for folder, _, names in os.walk(root):  # symlinks (reports/latest) are not followed
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _outs(outputs: list[bytes]) -> Iterable[tuple[str, bytes]]:
    return ((f"output {i}", data) for i, data in enumerate(outputs))


@pytest.fixture
def planted(tmp_path: Path) -> Planted:
    values = {
        "OPENAI_API_KEY": f"sk-{secrets.token_hex(16)}",
        "MY_PLAIN_VAR": f"plain-{secrets.token_hex(16)}",
        "GATEWAY_TOKEN": f"tok-{secrets.token_hex(16)}",  # given with --env only
        "GATEWAY_MODE": f"mode-{secrets.token_hex(16)}",  # given with --env only
    }
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        **os.environ,
        "OPENAI_API_KEY": values["OPENAI_API_KEY"],
        "MY_PLAIN_VAR": values["MY_PLAIN_VAR"],
        "TMPDIR": str(tmp),  # the harness's temporary folders are searched too
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"),
    }
    for name in ("OPENAI_BASE_URL", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    (tmp_path / "envkey.py").write_text(ENV_KEY)
    (tmp_path / "leaky.py").write_text(LEAKY)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "secrets.yaml").write_text(SCENARIO)
    return Planted(values, env, tmp_path, [])


@pytest.mark.sdk
def test_run_and_check_write_and_print_no_secret(planted: Planted) -> None:
    root, scenario = planted.root, planted.root / "scenarios" / "secrets.yaml"
    ran = planted.harness(
        "run", scenario, "--factory", "envkey.py:make", "--root", root,
        "--report-dir", root / "reports",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    healthy = planted.harness(
        "check", "--scenario", scenario, "--factory", "envkey.py:make", "--root", root,
        "--json", root / "healthy.json",
    )  # fmt: skip
    assert healthy.stdout.endswith("check: healthy (1 run)\n")
    leaky = planted.harness(
        "check", "--scenario", scenario, "--factory", "leaky.py:make", "--root", root,
        "--json", root / "leaky.json",
    )  # fmt: skip
    assert leaky.returncode == 1
    # the secret was in both texts the code under test produced, and was replaced
    assert "RuntimeError: refusing key <redacted>" in leaky.stdout
    assert "leaky factory sees <redacted>" in leaky.stdout
    planted.assert_nowhere()


def test_regress_shards_and_merge_write_and_print_no_secret(planted: Planted) -> None:
    root = planted.root
    shards = []
    for shard in ("1/2", "2/2"):
        done = planted.harness(
            "regress", root / "scenarios", "--root", root, "--shard", shard, "--quiet",
            "--report-dir", root / f"shard{shard[0]}",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        shards.append(Path(done.stdout.strip()) / "results.json")
    merged = planted.harness("report", "--merge", *shards, "--out", root / "merged")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert (root / "step-summary.md").stat().st_size > 0  # regress appended to it
    planted.assert_nowhere()


BISECT_SCENARIO = SCENARIO.split("variants:")[0]


def _commit(repo: Path, message: str) -> str:
    env = {**g.git_env(), "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com"}
    env |= {"GIT_COMMITTER_NAME": "CI", "GIT_COMMITTER_EMAIL": "ci@example.com"}
    for args in (["add", "-A"], ["commit", "--quiet", "--no-verify", "-m", message]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_bisect_writes_a_redacted_environment_and_no_secret(planted: Planted) -> None:
    root, values = planted.root, planted.values
    repo = root / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=repo, check=True)
    shas = []
    for i, source in enumerate((ENV_KEY, ENV_KEY, MUTATING, MODE_IN_ERROR)):
        (repo / "factory.py").write_text(f"# revision {i}\n{source}")
        shas.append(_commit(repo, f"c{i}"))
    (root / "bisect.yaml").write_text(BISECT_SCENARIO)
    done = planted.harness(
        "bisect", "--repo", repo, "--good", shas[0], "--bad", shas[3],
        "--scenario", root / "bisect.yaml", "--factory", "factory.py:make",
        "--env", f"GATEWAY_TOKEN={values['GATEWAY_TOKEN']}",
        "--env", f"GATEWAY_MODE={values['GATEWAY_MODE']}",
        # the install command echoes secrets into its log, which is scrubbed
        "--install", 'echo "install sees $GATEWAY_TOKEN, $GATEWAY_MODE and $OPENAI_API_KEY"',
        "--report-dir", root / "reports",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (root / "reports").iterdir()
    report = json.loads((run_dir / "bisect.json").read_text())
    assert (report["result"]["sha"], report["env"]) == (shas[2], {"GATEWAY_MODE": "<redacted>"})
    assert "; env: `GATEWAY_MODE=<redacted>`" in (run_dir / "bisect.md").read_text()
    config = json.loads((run_dir / "step-config.json").read_text())["env"]
    # secret-looking names are left out, name and value; other values off the allowlist hidden
    assert [config.get(name) for name in values] == [None, "<redacted>", None, "<redacted>"]
    assert config["HOME"] == planted.env["HOME"]  # the allowlist keeps its values
    assert set(planted.env["PATH"].split(os.pathsep)) <= set(config["PATH"].split(os.pathsep))
    logs = sorted((run_dir / "steps").glob("*.install.log"))
    assert logs and all(
        log.read_text() == "install sees <redacted>, <redacted> and <redacted>\n" for log in logs
    )
    checks = [p.read_text() for p in (run_dir / "steps").glob("*.check.json")]
    assert any("RuntimeError: gateway mode <redacted>" in text for text in checks)
    planted.assert_nowhere()


PLUGIN_TESTS = """\
from harness.testing import assert_healthy


def test_env_key(harness_check):
    assert_healthy(harness_check("envkey.py:make", "secrets.yaml"))


def test_leaky(harness_check):
    assert_healthy(harness_check("leaky.py:make", "secrets.yaml"))
"""


@pytest.mark.sdk
def test_the_pytest_plugin_prints_no_secret(planted: Planted) -> None:
    root = planted.root
    (root / "secrets.yaml").write_text(BISECT_SCENARIO)
    (root / "test_gateway_secrets.py").write_text(PLUGIN_TESTS)
    done = planted.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
         "--basetemp", str(root / "basetemp"), "--junitxml", str(root / "junit.xml"),
         "test_gateway_secrets.py"],
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed" in done.stdout
    assert "RuntimeError: refusing key <redacted>" in done.stdout
    planted.assert_nowhere()
