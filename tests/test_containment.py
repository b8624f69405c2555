"""Containment (harness.netguard): no worker reaches off loopback, and the run says so.

Every test that runs a worker runs it, with the whole harness around it, in a network
namespace of its own with only loopback up (``unshare -n``, or ``unshare -rn`` where only user
namespaces are allowed), so nothing can leave the machine even while the guard is broken.
Destinations are documentation addresses (192.0.2.0/24) and ``.invalid`` names. Attempts are
observed with ``strace`` (every connect/sendto/sendmsg the kernel saw, in every process of
the tree), never from their effect. Without a namespace or strace the tests skip, saying
why; with ``HARNESS_REQUIRE_NETNS=1`` (CI) they fail instead.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.netguard import action, no_proxy, refused_destination

TIMEOUT_S = 300  # a bound against a hang, not a speed check
NETNS_SCRIPT = 'ip link set lo up && exec "$@"'
REQUIRE_ENV = "HARNESS_REQUIRE_NETNS"
TRACED = "trace=connect,sendto,sendmsg"
SCENARIO = """version: 1
client: {kwargs: {timeout: 5}}
session: {turns: 2, idle_between_turns_ms: 0}
"""
FACTORIES = """\
import asyncio
import socket

import openai


def base_url_ip(client_kwargs, *, shared):
    return openai.OpenAI(**{**client_kwargs, "base_url": "http://192.0.2.1/v1"})


def base_url_name(client_kwargs, *, shared):
    return openai.OpenAI(**{**client_kwargs, "base_url": "https://api.example.invalid/v1"})


def async_base_url_ip(client_kwargs, *, shared):
    return openai.AsyncOpenAI(**{**client_kwargs, "base_url": "http://192.0.2.1/v1"})


def async_base_url_name(client_kwargs, *, shared):
    return openai.AsyncOpenAI(**{**client_kwargs, "base_url": "https://api.example.invalid/v1"})


def explicit_proxy(client_kwargs, *, shared):
    http_client = openai.DefaultHttpxClient(proxy="http://192.0.2.1:8080")
    return openai.OpenAI(**client_kwargs, http_client=http_client)


def raw_socket(client_kwargs, *, shared):
    socket.socket().connect(("192.0.2.1", 443))  # refused: raw
    return openai.OpenAI(**client_kwargs)


def raw_socket_caught(client_kwargs, *, shared):
    try:
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # refused: caught
    except OSError:
        pass  # and carries on as if nothing happened
    return openai.OpenAI(**client_kwargs)


def raw_asyncio_lookup(client_kwargs, *, shared):
    async def connect():
        await asyncio.open_connection("tracker.example.invalid", 443)  # in a resolver thread

    try:
        asyncio.run(connect())
    except OSError:
        pass
    return openai.OpenAI(**client_kwargs)


def udp_packet(client_kwargs, *, shared):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"ping", ("192.0.2.1", 53))  # refused: udp
    return openai.OpenAI(**client_kwargs)


def plain(client_kwargs, *, shared):
    return openai.OpenAI(**client_kwargs)


def async_plain(client_kwargs, *, shared):
    return openai.AsyncOpenAI(**client_kwargs)
"""
TAIL = "a worker may reach only loopback (127.0.0.0/8, ::1, localhost); nothing was sent"


def _line(marker: str) -> int:
    """The line of ``f.py`` that carries ``# refused: marker``."""
    lines = FACTORIES.splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.endswith(f"# refused: {marker}"))


def _by_sdk(spec: str) -> str:
    return (
        f"from the client that factory {spec!r} built or library code it called "
        "(no line of the code under test on the thread's stack)"
    )


# factory -> the one line the run reports
REFUSED = {
    "base_url_ip": "refused a connection to 192.0.2.1:80 "
    f"{_by_sdk('f.py:base_url_ip')} (socket.getaddrinfo)",
    "base_url_name": "refused a name lookup of api.example.invalid:443 "
    f"{_by_sdk('f.py:base_url_name')} (socket.getaddrinfo)",
    "async_base_url_ip": "refused a connection to 192.0.2.1:80 "
    f"{_by_sdk('f.py:async_base_url_ip')} (socket.connect)",
    "async_base_url_name": "refused a name lookup of api.example.invalid:443 "
    f"{_by_sdk('f.py:async_base_url_name')} (socket.getaddrinfo)",
    "explicit_proxy": "refused a connection to 192.0.2.1:8080 "
    f"{_by_sdk('f.py:explicit_proxy')} (socket.getaddrinfo)",
    "raw_socket": "refused a connection to 192.0.2.1:443 "
    f"from f.py:{_line('raw')} (socket.connect)",
    "raw_socket_caught": "refused a connection to 192.0.2.1:443 "
    f"from f.py:{_line('caught')} (socket.getaddrinfo)",
    # the factory's own lookup, run in asyncio's executor thread: no factory frame to name
    "raw_asyncio_lookup": "refused a name lookup of tracker.example.invalid:443 "
    f"{_by_sdk('f.py:raw_asyncio_lookup')} (socket.getaddrinfo)",
    "udp_packet": f"refused a packet to 192.0.2.1:53 from f.py:{_line('udp')} (socket.sendto)",
}


@functools.cache
def _netns() -> tuple[str, ...] | str:
    """The command prefix that runs a command in a namespace with only loopback, or why not."""
    reason = "unshare is not installed"
    for flags in ("-n", "-rn"):
        prefix = ("unshare", flags, "bash", "-c", NETNS_SCRIPT, "_")
        try:
            done = subprocess.run(
                [*prefix, "true"], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"{' '.join(prefix[:2])}: {exc}"
            continue
        if done.returncode == 0:
            return prefix
        reason = f"{' '.join(prefix[:2])}: {done.stderr.strip() or done.returncode}"
    return reason


def _isolated() -> tuple[str, ...]:
    prefix = _netns()
    why = prefix if isinstance(prefix, str) else None
    if why is None and shutil.which("strace") is None:
        why = "strace is not installed"
    if why is None:
        assert not isinstance(prefix, str)
        return prefix
    message = f"needs a network namespace with only loopback, and strace: {why}"
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{message} ({REQUIRE_ENV} is set)")
    pytest.skip(message)


@functools.cache
def _strace() -> tuple[str, ...]:
    """strace following the whole tree, stopping it only at the traced calls where the kernel
    can filter them (``--seccomp-bpf``, strace 5.3+): otherwise strace stops every process at
    every system call, which tripled each run's CPU."""
    filtered = ("strace", "-f", "-qq", "--seccomp-bpf", "-e", TRACED)
    done = subprocess.run([*filtered, "true"], capture_output=True, timeout=60, check=False)
    if done.returncode == 0 and not done.stderr:
        return filtered
    return ("strace", "-f", "-qq", "-e", TRACED)


def _traced(
    argv: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``argv`` isolated under strace; returns it and every connect/sendto/sendmsg line
    toward an internet address (AF_INET, AF_INET6) that the tree's processes made."""
    log = tmp_path / "strace.log"
    command = [*_isolated(), *_strace(), "-o", str(log), *argv]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    lines = log.read_text(encoding="utf-8").splitlines()
    return done, [line for line in lines if re.search(r"sa_family=AF_INET6?\b", line)]


def _off_loopback(attempts: list[str]) -> list[str]:
    """The attempts aimed anywhere but 127.0.0.0/8 or ::1 (a DNS server's port 53 included)."""
    loopback = re.compile(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"')
    return [a for a in attempts if not loopback.search(a) or "htons(53)" in a]


def _project(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text(FACTORIES, encoding="utf-8")
    (tmp_path / "s.yaml").write_text(SCENARIO, encoding="utf-8")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def test_strace_in_the_namespace_sees_an_attempt_off_loopback(tmp_path: Path) -> None:
    # The observer itself: an unguarded connect toward 192.0.2.1 is seen (and goes nowhere).
    code = "import socket\ntry: socket.socket().connect(('192.0.2.1', 443))\nexcept OSError: pass"
    done, attempts = _traced([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(_off_loopback(attempts)) == 1
    assert 'inet_addr("192.0.2.1")' in attempts[0]
    assert "htons(443)" in attempts[0]
    assert "ENETUNREACH" in attempts[0]  # the namespace has no route off the machine


@pytest.mark.sdk
def test_check_refuses_traffic_off_loopback(tmp_path: Path) -> None:
    _project(tmp_path)
    factory = "base_url_name"
    done, attempts = _traced(
        _cli("check", "--scenario", "s.yaml", "--factory", f"f.py:{factory}"), tmp_path
    )
    assert done.returncode == 125, done.stdout + done.stderr
    line = f"{REFUSED[factory]}: {TAIL}"
    assert f"(run untestable: {line})" in done.stdout, done.stdout
    assert done.stdout.count("refused ") == 1
    assert _off_loopback(attempts) == []


@pytest.mark.sdk
def test_every_way_off_loopback_is_refused_and_named_in_one_line(tmp_path: Path) -> None:
    """Every factory of REFUSED in one regress (its runs forked from one zygote, inside the
    traced tree): the SDK's own HTTP stack on each line, sync and async, a proxy, bare
    sockets, a lookup in asyncio's resolver thread, UDP."""
    _project(tmp_path)
    roles = "".join(f"  f.py:{factory}: observe\n" for factory in sorted(REFUSED))
    (tmp_path / "all.yaml").write_text(f"{SCENARIO}variants:\n{roles}", encoding="utf-8")
    done, attempts = _traced(
        _cli("regress", "all.yaml", "--quiet", "--report-dir", "reports"), tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())
    runs = {e["variant"]: e["runs"] for e in results["entries"]}
    assert {spec: [(r["status"], r["detail"]) for r in ran] for spec, ran in runs.items()} == {
        f"f.py:{factory}": [("untestable", f"{line}: {TAIL}")] for factory, line in REFUSED.items()
    }
    assert _off_loopback(attempts) == []


@pytest.mark.sdk
def test_run_names_the_refusal_in_one_line(tmp_path: Path) -> None:
    _project(tmp_path)
    done, attempts = _traced(
        _cli("run", "s.yaml", "--factory", "f.py:raw_socket", "--report-dir", "reports"),
        tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    line = f"{REFUSED['raw_socket']}: {TAIL}"
    assert done.stderr.strip().splitlines()[-1] == (
        f"harness run: error: f.py:raw_socket: untestable: {line}"
    )
    assert _off_loopback(attempts) == []


@pytest.mark.sdk
def test_forked_workers_are_contained_too(tmp_path: Path) -> None:
    # --repeat 2 forks both runs from a zygote (harness.zygote).
    _project(tmp_path)
    factory = "async_base_url_name"
    done, attempts = _traced(
        _cli("check", "--scenario", "s.yaml", "--factory", f"f.py:{factory}", "--repeat", "2"),
        tmp_path,
    )
    assert done.returncode == 125, done.stdout + done.stderr
    assert done.stdout.count(f"(run untestable: {REFUSED[factory]}: {TAIL})") == 2
    assert _off_loopback(attempts) == []


@pytest.mark.sdk
@pytest.mark.parametrize("factory", ["plain", "async_plain"])
def test_proxy_variables_do_not_carry_loopback_traffic(tmp_path: Path, factory: str) -> None:
    _project(tmp_path)
    proxy = "http://192.0.2.1:8080"
    env = dict(os.environ, NO_PROXY="", no_proxy="")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = proxy
    done, attempts = _traced(
        _cli("check", "--scenario", "s.yaml", "--factory", f"f.py:{factory}"), tmp_path, env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check: healthy" in done.stdout
    assert attempts != []  # the calls reached the mock server, on loopback
    assert _off_loopback(attempts) == []


@pytest.mark.sdk
def test_the_worker_records_the_refusal_even_when_the_factory_catches_it(
    tmp_path: Path,
) -> None:
    from harness.scenario import load_scenario
    from harness.worker import Job

    _project(tmp_path)
    job = Job(
        scenario=load_scenario(tmp_path / "s.yaml").to_dict(),
        factory="f.py:raw_socket_caught",
        root=str(tmp_path),
        base_url="http://127.0.0.1:9/v1",  # never reached: the factory is refused first
        port=9,
        out=str(tmp_path / "out.jsonl"),
    )
    (tmp_path / "job.json").write_text(json.dumps(job.to_dict()), encoding="utf-8")
    done, attempts = _traced([sys.executable, "-m", "harness.worker", "job.json"], tmp_path)
    assert done.returncode == 3, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["type"] for line in lines] == ["environment", "sample", "refused"]
    assert lines[-1] == {
        "type": "refused",
        "event": "socket.getaddrinfo",
        "action": "a connection to",
        "destination": "192.0.2.1:443",
        "origin": f"f.py:{_line('caught')}",
        "message": f"{REFUSED['raw_socket_caught']}: {TAIL}",
    }
    assert done.stderr.strip() == f"harness worker: untestable: {lines[-1]['message']}"
    assert _off_loopback(attempts) == []


PLUGIN_TEST = """\
import pytest


@pytest.mark.parametrize("factory", ["base_url_name", "async_base_url_ip", "raw_socket"])
def test_contained(harness_check, factory):
    checked = harness_check(f"f.py:{factory}", "s.yaml", expected="observe")
    print(f"RESULT {factory} {checked.result.status} {checked.result.detail}")
"""


def test_the_pytest_plugin_workers_are_contained(tmp_path: Path) -> None:
    _project(tmp_path)
    (tmp_path / "test_gateway.py").write_text(PLUGIN_TEST, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n", encoding="utf-8")
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q", "-p", "harness"]
    done, attempts = _traced([*argv, "test_gateway.py"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # pytest -s prints the progress dots on the same lines as the test's output
    results = sorted(re.findall(r"RESULT .*", done.stdout))
    assert results == [
        f"RESULT {factory} untestable {REFUSED[factory]}: {TAIL}"
        for factory in ("async_base_url_ip", "base_url_name", "raw_socket")
    ]
    assert _off_loopback(attempts) == []


class _Sock:
    def __init__(self, family: int) -> None:
        self.family = family


@pytest.mark.parametrize(
    ("event", "args", "expected"),
    [
        ("socket.connect", (_Sock(socket.AF_INET), ("127.0.0.1", 80)), None),
        ("socket.connect", (_Sock(socket.AF_INET), ("127.8.9.10", 80)), None),
        ("socket.connect", (_Sock(socket.AF_INET6), ("::1", 80, 0, 0)), None),
        ("socket.connect", (_Sock(socket.AF_INET6), ("::ffff:127.0.0.1", 80, 0, 0)), None),
        ("socket.connect", (_Sock(socket.AF_INET), ("localhost", 80)), None),
        ("socket.connect", (_Sock(socket.AF_UNIX), "/tmp/x.sock"), None),
        ("socket.connect", (_Sock(socket.AF_INET), ("192.0.2.1", 443)), "192.0.2.1:443"),
        ("socket.connect", (_Sock(socket.AF_INET), ("0.0.0.0", 80)), "0.0.0.0:80"),
        ("socket.connect", (_Sock(socket.AF_INET), ("", 80)), "'':80"),
        ("socket.connect", (_Sock(socket.AF_INET), ("a.invalid", 80)), "a.invalid:80"),
        (
            "socket.connect",
            (_Sock(socket.AF_INET6), ("2001:db8::1", 443, 0, 0)),
            "[2001:db8::1]:443",
        ),
        ("socket.connect", (_Sock(socket.AF_INET6), ("::ffff:127.0.0.1", 80, 0, 0)), None),
        (
            "socket.connect",
            (_Sock(socket.AF_INET6), ("::ffff:192.0.2.1", 80, 0, 0)),
            "[::ffff:192.0.2.1]:80",
        ),
        ("socket.sendto", (_Sock(socket.AF_INET), ("192.0.2.9", 53)), "192.0.2.9:53"),
        ("socket.sendmsg", (_Sock(socket.AF_INET), None), None),
        ("socket.sendmsg", (_Sock(socket.AF_INET), ("192.0.2.9", 53)), "192.0.2.9:53"),
        ("socket.getaddrinfo", ("localhost", 80, 0, 0, 0), None),
        ("socket.getaddrinfo", (None, 80, 0, 0, 0), None),
        ("socket.getaddrinfo", (b"a.invalid", 443, 0, 0, 0), "a.invalid:443"),
        ("socket.getaddrinfo", ("a.invalid", None, 0, 0, 0), "a.invalid"),
        ("socket.gethostbyname", ("a.invalid",), "a.invalid"),
        ("socket.gethostbyaddr", ("192.0.2.1",), "192.0.2.1"),
        ("socket.gethostbyaddr", ("127.0.0.1",), None),
        ("socket.getnameinfo", (("192.0.2.1", 80),), "192.0.2.1:80"),
        ("socket.__new__", (None, socket.AF_INET, socket.SOCK_STREAM, 0), None),
        ("socket.__new__", (None, -1, -1, -1), None),
        ("socket.__new__", (None, 17, 3, 0), "a socket of family AF_PACKET"),
        ("socket.bind", (_Sock(socket.AF_INET), ("0.0.0.0", 0)), None),
        ("open", ("/etc/hosts", "r", 0), None),
    ],
)
def test_refused_destination(event: str, args: tuple[object, ...], expected: str | None) -> None:
    assert refused_destination(event, args) == expected


@pytest.mark.parametrize(
    ("event", "args", "expected"),
    [
        ("socket.getaddrinfo", ("api.example.invalid", 443, 0, 0, 0), "a name lookup of"),
        ("socket.getaddrinfo", (b"192.0.2.1", 443, 0, 0, 0), "a connection to"),
        ("socket.gethostbyname", ("a.invalid",), "a name lookup of"),
        ("socket.gethostbyaddr", ("192.0.2.1",), "a reverse lookup of"),
        ("socket.connect", (None, ("192.0.2.1", 443)), "a connection to"),
        ("socket.sendto", (None, ("192.0.2.1", 53)), "a packet to"),
        ("socket.__new__", (None, 17, 3, 0), "creating"),
    ],
)
def test_action(event: str, args: tuple[object, ...], expected: str) -> None:
    assert action(event, args) == expected


def test_no_proxy_adds_the_loopback_hosts_once() -> None:
    assert no_proxy("") == "127.0.0.1,localhost,::1"
    assert no_proxy(" corp.example , localhost", ["127.0.0.2"]) == (
        "corp.example,localhost,127.0.0.1,::1,127.0.0.2"
    )
