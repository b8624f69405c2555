"""The pytest plugin (entry point ``pytest11``: ``harness``): check a gateway from its tests.

Fixtures (docs/pytest.md has a complete example):

- ``mock_server``: a started :class:`~harness.mockserver.MockServer` on an ephemeral loopback
  port, configured by the test's ``@pytest.mark.mock_server(source, **server_keys)`` marker
  (see :func:`harness.testing.server_spec`) or with the defaults; stopped after the test.
- ``mock_server_factory``: ``make(source=None, **server_keys) -> MockServer``; every server it
  made is stopped after the test. ``session_mock_server_factory`` is the session-scoped one:
  it hands out one server per distinct spec for the whole session, reset before each hand-out.
- ``harness_check``: ``check(factory, scenario, **options) -> Checked``, i.e.
  :func:`harness.testing.check_factory` (a worker process per call).
- ``harness_scenario``: a test that asks for it runs once per bundled scenario that judges a
  client factory (:func:`harness.bundled.client_names`: its name), or
  per scenario named in ``@pytest.mark.harness_scenarios(*names)``.

Each pytest-xdist worker is its own process with its own servers and ports, so nothing is
shared between workers. Importing this module loads neither openai nor the mock server: a
project that installs the harness pays nothing until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.mockserver import MockServer
    from harness.testing import Checked
    from harness.zygote import ZygotePool

__all__ = ["ServerPool"]

_MARKERS = (
    "mock_server(source=None, **server_keys): configure the mock_server fixture "
    "(a scenario name or file, a server: mapping, or its keys)",
    "harness_scenarios(*names): run a test using harness_scenario on these bundled scenarios only",
)


class ServerPool:
    """Makes started mock servers and stops them all at :meth:`close`.

    With ``reuse=True`` a request for a spec already served returns that server after
    ``reset()`` (its counters zeroed), instead of a new one.
    """

    def __init__(self, *, reuse: bool) -> None:
        self._reuse = reuse
        self._servers: dict[str, MockServer] = {}
        self._count = 0

    def __call__(self, source: Any = None, /, **server_keys: Any) -> MockServer:
        from harness.mockserver import MockServer
        from harness.testing import server_spec

        spec = server_spec(source, **server_keys)
        key = repr(spec) if self._reuse else str(self._count)
        self._count += 1
        server = self._servers.get(key)
        if server is not None:
            server.reset()
            return server
        server = MockServer(spec)
        server.start()
        self._servers[key] = server
        return server

    def close(self) -> None:
        """Stop every server (each joins its thread and closes its sockets)."""
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.stop()


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness_scenario" not in metafunc.fixturenames:
        return
    from harness import bundled

    marker = metafunc.definition.get_closest_marker("harness_scenarios")
    names = list(marker.args) if marker is not None and marker.args else bundled.client_names()
    metafunc.parametrize("harness_scenario", names, ids=names)


@pytest.fixture
def mock_server_factory() -> Iterator[ServerPool]:
    """``make(source=None, **server_keys)``: mock servers stopped after the test."""
    pool = ServerPool(reuse=False)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def session_mock_server_factory() -> Iterator[ServerPool]:
    """Like ``mock_server_factory``, but one server per distinct spec for the whole session,
    reset before each hand-out; stopped at the end of the session."""
    pool = ServerPool(reuse=True)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def mock_server(request: pytest.FixtureRequest, mock_server_factory: ServerPool) -> MockServer:
    """A mock server configured by ``@pytest.mark.mock_server(...)``, else the defaults."""
    marker = request.node.get_closest_marker("mock_server")
    if marker is None:
        return mock_server_factory()
    return mock_server_factory(*marker.args, **marker.kwargs)


@pytest.fixture(scope="session")
def _harness_workers() -> Iterator[ZygotePool]:
    """The session's zygote: the checks after the first fork their workers from it."""
    from harness.zygote import ZygotePool

    pool = ZygotePool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def harness_check(
    request: pytest.FixtureRequest, _harness_workers: ZygotePool
) -> Callable[..., Checked]:
    """``check(factory, scenario, *, root=None, expected=None, watchdog_s=None,
    attribute=False)`` (``expected=None``: the scenario's role for the factory, as
    ``harness run --factory``: its ``variants:`` entry, else ``pass``).

    ``factory`` is a spec string (resolved under ``root``, default the pytest rootdir) or a
    module-level function; ``scenario`` a :class:`Scenario`, a file (a relative path is
    relative to the rootdir) or a bundled scenario's name, looked up as the CLI does
    (:func:`harness.bundled.resolve`: a path that exists wins). The run happens in a worker
    process; ``attribute=True`` says in ``assert_healthy``'s message which HTTP client holds
    each leaked socket and where it was created (docs/attribution.md).
    """
    from harness.testing import check_factory

    rootdir: Path = request.config.rootpath

    def check(factory: Any, scenario: Any, **options: Any) -> Checked:
        options.setdefault("root", rootdir)
        options.setdefault("workers", _harness_workers)
        if isinstance(scenario, str | Path) and (rootdir / scenario).exists():
            scenario = rootdir / scenario  # a relative path is relative to the rootdir
        # else a path from the current directory, or a bundled name (harness.bundled.resolve)
        return check_factory(factory, scenario, **options)

    return check


@pytest.fixture
def harness_scenario(request: pytest.FixtureRequest) -> str:
    """The bundled scenario's name this test instance runs (see ``pytest_generate_tests``)."""
    name: str = request.param
    return name
