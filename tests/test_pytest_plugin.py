"""The pytest plugin, on a small gateway project made in tmp_path with pytester.

The project's test file and scenario are the complete example of docs/pytest.md, so the
documented example is exactly what runs here, against a buggy and a fixed factory.
"""

from __future__ import annotations

import gc
import re
import threading
from pathlib import Path

import openai
import psutil
import pytest

from harness.pytest_plugin import ServerPool

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "pytest.md"

# The #11070 regression and its fix, written the way a gateway project would.
BUGGY = """\
import openai


def create_openai_client(client_kwargs, *, shared):
    if "http_client" not in client_kwargs:
        client_kwargs["http_client"] = openai.DefaultHttpxClient()  # into the caller's dict
    return openai.OpenAI(**client_kwargs)
"""
FIXED = """\
import openai


def create_openai_client(client_kwargs, *, shared):
    kwargs = dict(client_kwargs)
    kwargs.setdefault("http_client", openai.DefaultHttpxClient())
    return openai.OpenAI(**kwargs)
"""
PROVIDER_SCENARIOS = ("reload-between-turns", "terminate-in-flight")  # with session.events
TIMEOUT_S = 600  # a bound against a hang, not a speed check


def _example(language: str) -> str:
    text = DOC.read_text(encoding="utf-8").split("## Complete example", 1)[1]
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)[0]


def _project(pytester: pytest.Pytester, factory: str) -> None:
    package = pytester.mkpydir("mygateway")
    (package / "clients.py").write_text(factory, encoding="utf-8")
    tests = pytester.mkdir("tests")
    (tests / "lifecycle.yaml").write_text(_example("yaml"), encoding="utf-8")
    (tests / "test_client_lifecycle.py").write_text(_example("python"), encoding="utf-8")
    pytester.makeini("[pytest]\npythonpath = .\nfilterwarnings = error\n")


def _outcomes(pytester: pytest.Pytester, *args: str) -> tuple[dict[str, int], str]:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=TIMEOUT_S)
    return result.parseoutcomes(), result.stdout.str()


def test_the_example_fails_on_the_buggy_factory(pytester: pytest.Pytester) -> None:
    _project(pytester, BUGGY)
    outcomes, out = _outcomes(
        pytester, "-k", "use-after-close or concurrent-sessions or own or share or speed"
    )
    assert (outcomes.get("failed"), outcomes.get("passed")) == (4, 1), out
    for name in (
        "test_factory_on_every_bundled_scenario[use-after-close]",
        "test_factory_on_every_bundled_scenario[concurrent-sessions]",
        "test_factory_on_our_own_scenario",
        "test_request_clients_do_not_share_a_pool",
    ):
        assert f"FAILED tests/test_client_lifecycle.py::{name}" in out
    # The failure message: the verdict's reasons, then the per-turn table.
    assert (
        "AssertionError: mygateway.clients:create_openai_client on use-after-close "
        "(sync client): fail, expected pass"
    ) in out
    assert "  - errors 3 > 0" in out
    assert re.search(r"turn +calls +errors +close_wait +established +fds +first error", out)


def test_the_example_passes_on_the_fixed_factory_under_xdist(pytester: pytest.Pytester) -> None:
    _project(pytester, FIXED)
    # Collection covers every bundled scenario but the provider ones: they judge a terminate
    # hook, which a client factory does not define (docs/pytest.md).
    # (in this process: collecting runs nothing, and a pytest process costs a second of CPU)
    collected = pytester.runpytest_inprocess("--collect-only", "-q")
    bundled = {
        p.stem for p in (Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml")
    }
    names = set(
        re.findall(r"test_factory_on_every_bundled_scenario\[([\w-]+)\]", collected.stdout.str())
    )
    assert names == bundled - set(PROVIDER_SCENARIOS), collected.stdout.str()
    # Under xdist, a few of them (each scenario's run is what the regress tests judge).
    outcomes, out = _outcomes(
        pytester,
        "-p",
        "xdist",
        "-n",
        "2",
        "-k",
        "use-after-close or rate-limited or own or share or speed",
    )
    assert outcomes == {"passed": 5}, out
    assert "created: 2/2 workers" in out


def test_markers_select_scenarios_and_configure_the_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.harness_scenarios("use-after-close", "rate-limited")
        def test_names(harness_scenario):
            assert harness_scenario in ("use-after-close", "rate-limited")

        @pytest.mark.mock_server("use-after-close")
        def test_from_a_scenario(mock_server):
            assert mock_server.base_url == f"http://127.0.0.1:{mock_server.port}/v1"

        @pytest.mark.mock_server({"keepalive": {"close": "rst"}}, latency_ms=3)
        def test_from_a_mapping_and_keys(mock_server):
            assert (mock_server.spec.keepalive.close, mock_server.spec.latency_ms) == ("rst", 3)

        def test_a_lambda_is_refused(harness_check):
            harness_check(lambda client_kwargs, *, shared: None, "use-after-close")
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_names?use-after-close? PASSED*",
            "*test_names?rate-limited? PASSED*",
            "*FactoryError: factory <function*cannot run in a worker process: it is a lambda*",
        ]
    )


def _own_fds() -> int:
    gc.collect()  # an earlier test's garbage must not close its fds mid-count
    return psutil.Process().num_fds()


def _server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mockserver-")]


WHO_RUNS_ME = """\
import os

import openai
import psutil


def make(client_kwargs, *, shared):
    if shared:  # once per run: which process started this worker
        parent = " ".join(psutil.Process(os.getppid()).cmdline())
        with open(os.environ["PARENTS"], "a") as out:
            out.write(("zygote" if "harness.zygote_process" in parent else "fresh") + "\\n")
    return openai.OpenAI(**dict(client_kwargs))
"""


def test_a_sessions_checks_after_the_first_fork_from_a_zygote(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(who=WHO_RUNS_ME)
    pytester.makepyfile(
        test_checks="""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_healthy(harness_check, n):
            assert harness_check("who.py:make", "use-after-close").verdict.healthy
        """
    )
    parents = pytester.path / "parents.txt"
    monkeypatch.setenv("PARENTS", str(parents))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=TIMEOUT_S)
    result.assert_outcomes(passed=3)
    # the first run alone is cheaper fresh; each test has its own PYTEST_CURRENT_TEST, which
    # the worker's environment leaves out, so the zygote serves the tests after it
    assert parents.read_text().split() == ["fresh", "zygote", "zygote"]


def test_a_pool_leaves_no_thread_fd_or_socket() -> None:
    fds, threads = _own_fds(), _server_threads()
    pool = ServerPool(reuse=True)
    one = pool(latency_ms=1)
    assert pool(latency_ms=1) is one
    two = pool("use-after-close")
    for server in (one, two):
        with openai.OpenAI(api_key="sk-x", base_url=server.base_url, max_retries=0) as client:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert (one.stats().connections, two.stats().connections) == (1, 1)
    assert len(_server_threads()) == 2
    pool.close()
    assert (_own_fds(), _server_threads()) == (fds, threads)
    assert psutil.Process().net_connections(kind="tcp") == []


def test_a_reused_server_is_reset_before_each_hand_out() -> None:
    pool = ServerPool(reuse=True)
    try:
        server = pool()
        with openai.OpenAI(api_key="sk-x", base_url=server.base_url, max_retries=0) as client:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert len(server.stats().calls) == 1
        assert pool() is server
        assert server.stats().calls == ()
    finally:
        pool.close()
