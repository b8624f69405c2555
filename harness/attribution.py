"""Leak attribution in the worker: which HTTP client holds each socket, and where it was made.

Theory of operation. With ``--attribute`` the worker builds one :class:`Attribution` before it
imports the factory (a module-level client is made at import) and:

1. records every instance of the SDK's HTTP client classes (``httpx``/``httpx2`` ``Client``
   and ``AsyncClient``) and connection pools (``httpcore``/``httpcore2`` ``ConnectionPool``
   and ``AsyncConnectionPool``, proxies included) when its ``__init__`` returns: its creation
   stack, and whether a factory call was running (``shared``, and the gateway's turn);
2. records every ``openai.OpenAI``/``AsyncOpenAI`` as a use of the HTTP client it wraps: by a
   shared or a request client when built during a factory call (:meth:`Attribution.watch`
   wraps the factory, so the factory's code is not changed), else by an "other" client (one a
   provider object rebuilds in a call, say);
3. at each sample, maps the sockets toward the mock server (their fds, from the probe) to the
   pools' connections (``connection._connection._network_stream.get_extra_info("socket")``),
   each pool to the client whose transports hold it, and groups the owners by creation site
   into :class:`~harness.holders.Holder` values.

Objects are held by weak references: recording never keeps a client alive. Nothing is patched
until :meth:`Attribution.install`, and :meth:`Attribution.uninstall` restores every class;
without ``--attribute`` this module is not used at all. The user's frames are those outside
the standard library, installed packages and the harness (its bundled variants count as the
user's code); paths are shown relative to ``root``, the harness's folder or site-packages.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import sysconfig
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from harness.holders import Holder

__all__ = ["Attribution", "Socket"]

Frame = tuple[str, int, str]  # file, line, function
STACK_DEPTH: Final = 48  # frames recorded per creation (innermost first)
STACK_SHOWN: Final = 12  # frames kept in a Holder
CLIENT, POOL, SDK = "client", "pool", "sdk"
# module -> its classes recorded, each with what it is
TARGETS: Final = {
    "httpx": (("Client", CLIENT), ("AsyncClient", CLIENT)),
    "httpx2": (("Client", CLIENT), ("AsyncClient", CLIENT)),
    "httpcore": (("ConnectionPool", POOL), ("AsyncConnectionPool", POOL)),
    "httpcore2": (("ConnectionPool", POOL), ("AsyncConnectionPool", POOL)),
    "openai": (("OpenAI", SDK), ("AsyncOpenAI", SDK)),
}

# (shared, turn) while a factory call runs in this thread or task.
_BUILDING: ContextVar[tuple[bool, int] | None] = ContextVar("harness_building", default=None)


@dataclass(frozen=True)
class Socket:
    """One socket toward the mock server: its fd in this process and its TCP state."""

    fd: int
    status: str  # "CLOSE_WAIT" or "ESTABLISHED"


@dataclass
class _Creation:
    kind: str  # "httpx.Client"
    frames: tuple[Frame, ...]
    building: tuple[bool, int] | None
    is_pool: bool
    # OpenAI clients wrapping it: [shared, request, built outside any factory call]
    uses: list[int] = field(default_factory=lambda: [0, 0, 0])


class Attribution:
    """Records HTTP clients and pools as they are made; :meth:`holders` says who holds what."""

    def __init__(self, root: Path) -> None:
        self.turn = 1  # the gateway's turn in progress (1 also before the first turn)
        self._places = _Places(root)
        self._lock = threading.Lock()
        self._created: weakref.WeakKeyDictionary[Any, _Creation] = weakref.WeakKeyDictionary()
        self._patched: list[tuple[type, Any]] = []
        self._finder: _OnImport | None = None

    def install(self) -> None:
        """Patch the classes of :data:`TARGETS` in the modules already imported, and of the
        others as they are imported (importing a stack the code never uses would cost more
        than all the recording)."""
        pending = set()
        for module in TARGETS:
            if module in sys.modules:
                self._patch_module(sys.modules[module])
            else:
                pending.add(module)
        self._finder = _OnImport(pending, self._patch_module)
        sys.meta_path.insert(0, self._finder)

    def uninstall(self) -> None:
        """Restore every patched ``__init__``; stop watching imports."""
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        for cls, original in reversed(self._patched):
            cls.__init__ = original
        self._patched.clear()

    def _patch_module(self, module: ModuleType) -> None:
        for name, what in TARGETS[module.__name__]:
            cls = getattr(module, name, None)
            if not isinstance(cls, type) or "__init__" not in cls.__dict__:
                continue
            if what == SDK:
                self._patch(cls, self._wrapped)
            else:
                self._patch(cls, functools.partial(self._created_one, _kind(cls), what == POOL))

    def __enter__(self) -> Attribution:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def watch(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        """``factory``, marking what it builds with ``shared`` and the current turn."""

        @functools.wraps(factory)  # keeps __module__: the terminate hook is found beside it
        def watched(client_kwargs: dict[str, Any], *, shared: bool) -> Any:
            token = _BUILDING.set((shared, self.turn))
            try:
                return factory(client_kwargs, shared=shared)
            finally:
                _BUILDING.reset(token)

        return watched

    def turn_done(self, turn: int) -> None:
        """Turn ``turn`` ended: later builds belong to the next one."""
        self.turn = turn + 1

    def _patch(self, cls: type, record: Callable[[Any], None]) -> None:
        original = cls.__dict__["__init__"]

        @functools.wraps(original)
        def __init__(obj: Any, *args: Any, **kwargs: Any) -> None:
            original(obj, *args, **kwargs)
            record(obj)

        cls.__init__ = __init__  # type: ignore[misc]
        self._patched.append((cls, original))

    def _created_one(self, kind: str, is_pool: bool, obj: Any) -> None:
        creation = _Creation(kind, _stack(sys._getframe(2)), _BUILDING.get(), is_pool)
        with self._lock:
            self._created.setdefault(obj, creation)  # a subclass's super().__init__: once

    def _wrapped(self, sdk_client: Any) -> None:
        building = _BUILDING.get()
        http = getattr(sdk_client, "_client", None)
        with self._lock:
            creation = self._created.get(http) if http is not None else None
            if creation is not None:
                creation.uses[2 if building is None else 0 if building[0] else 1] += 1

    def holders(self, sockets: Sequence[Socket]) -> tuple[Holder, ...]:
        """Who holds ``sockets``, grouped by creation site; largest group first."""
        with self._lock:
            created = list(self._created.items())
        owner_of = _owners(created)
        groups: dict[tuple[Any, ...], list[tuple[Socket, Any]]] = {}
        for sock in sockets:
            owner = owner_of.get(sock.fd)
            key = self._key(owner[0]) if owner else ()
            groups.setdefault(key, []).append((sock, owner))
        held = [self._holder(members) for members in groups.values()]
        return tuple(sorted(held, key=lambda h: (-h.sockets, h.site)))

    def _pool_site(self, pool: _Creation, site: str, function: str) -> str:
        """Where ``pool`` was built, unless in the very function that built its client."""
        pool_site, pool_function, _ = self._places.site(pool.frames)
        same_file = pool_site.rpartition(":")[0] == site.rpartition(":")[0]
        return "" if same_file and pool_function == function else pool_site

    def _key(self, creation: _Creation) -> tuple[Any, ...]:
        shared = None if creation.building is None else creation.building[0]
        return (creation.kind, creation.frames, shared)

    def _holder(self, members: list[tuple[Socket, Any]]) -> Holder:
        close_wait = sum(1 for sock, _ in members if sock.status == "CLOSE_WAIT")
        established = len(members) - close_wait
        owners = {id(owner[1]): owner for _, owner in members if owner}
        if not owners:
            return Holder(len(members), close_wait, established, 0, "")
        first, _, pool = next(iter(owners.values()))
        site, function, stack = self._places.site(first.frames)
        pool_site = "" if pool is None else self._pool_site(pool, site, function)
        turns = {o[0].building[1] for o in owners.values() if o[0].building is not None}
        return Holder(
            sockets=len(members),
            close_wait=close_wait,
            established=established,
            objects=len(owners),
            kind=first.kind,
            site=site,
            function=function,
            stack=stack,
            shared=None if first.building is None else first.building[0],
            turns=tuple(sorted(turns)),
            shared_clients=sum(o[0].uses[0] for o in owners.values()),
            request_clients=sum(o[0].uses[1] for o in owners.values()),
            other_clients=sum(o[0].uses[2] for o in owners.values()),
            pool="" if pool is None else pool.kind,
            pool_site=pool_site,
            via=stack[1] if len(stack) > 1 and self._places.user_frames(first.frames) > 1 else "",
        )


# fd -> (the owner's creation, the owner, its pool's creation or None)
Owner = tuple[_Creation, Any, "_Creation | None"]


def _owners(created: Sequence[tuple[Any, _Creation]]) -> dict[int, Owner]:
    """Every recorded pool's connection sockets, by fd, owned by the client holding the pool
    (else by the pool itself)."""
    pools = {id(obj): (obj, c) for obj, c in created if c.is_pool}
    owners: dict[int, Owner] = {}
    for obj, creation in created:
        if creation.is_pool:
            continue
        for pool in _pools_of(obj):
            pool_creation = pools.pop(id(pool), (None, None))[1]
            for fd in _fds(pool):
                owners[fd] = (creation, obj, pool_creation)
    for pool, creation in pools.values():  # pools no recorded client holds
        for fd in _fds(pool):
            owners.setdefault(fd, (creation, pool, None))
    return owners


def _pools_of(client: Any) -> list[Any]:
    mounts = getattr(client, "_mounts", None) or {}
    transports = [getattr(client, "_transport", None), *mounts.values()]
    return [t._pool for t in transports if t is not None and hasattr(t, "_pool")]


def _fds(pool: Any) -> Iterable[int]:
    """The fds of the sockets of ``pool``'s connections (HTTP/1.1 and HTTP/2 alike)."""
    for connection in list(getattr(pool, "_connections", ())):
        inner = getattr(connection, "_connection", None) or connection
        stream = getattr(inner, "_network_stream", None)
        sock = None if stream is None else stream.get_extra_info("socket")
        if sock is not None and sock.fileno() >= 0:
            yield sock.fileno()


class _OnImport(importlib.abc.MetaPathFinder):
    """Calls ``imported(module)`` once each of ``names`` has been imported (top-level
    packages only), by wrapping its loader's ``exec_module``."""

    def __init__(self, names: set[str], imported: Callable[[ModuleType], None]) -> None:
        self._names = names
        self._imported = imported

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._names:
            return None
        self._names.discard(fullname)  # also keeps the find_spec below from coming back here
        spec = importlib.util.find_spec(fullname)
        loader = None if spec is None else spec.loader
        if loader is None:
            return None
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            self._imported(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _kind(cls: type) -> str:
    return f"{cls.__module__.partition('.')[0]}.{cls.__qualname__}"


def _stack(frame: Any) -> tuple[Frame, ...]:
    frames: list[Frame] = []
    while frame is not None and len(frames) < STACK_DEPTH:
        frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    return tuple(frames)


class _Places:
    """Which frames are the user's, and how a file is shown."""

    def __init__(self, root: Path) -> None:
        import harness

        package = Path(harness.__file__).resolve().parent
        self._root = root.resolve()
        self._harness = package
        self._variants = package / "variants"
        paths = sysconfig.get_paths()
        self._stdlib = {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib")}

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one instance per worker
    def _user(self, file: str) -> bool:
        if file.startswith("<"):
            return False
        path = Path(file).resolve()
        if any(p in ("site-packages", "dist-packages") for p in path.parts):
            return False
        if path.is_relative_to(self._harness):
            return path.is_relative_to(self._variants)
        return not any(path.is_relative_to(s) for s in self._stdlib)

    @functools.lru_cache(maxsize=512)  # noqa: B019
    def shown(self, file: str) -> str:
        path = Path(file).resolve() if not file.startswith("<") else Path(file)
        for base in (self._root, self._harness.parent):
            if path.is_relative_to(base):
                return path.relative_to(base).as_posix()
        parts = path.parts
        for marker in ("site-packages", "dist-packages"):
            if marker in parts:
                return "/".join(parts[parts.index(marker) + 1 :])
        return path.as_posix()

    def user_frames(self, frames: Sequence[Frame]) -> int:
        return sum(1 for f in frames if self._user(f[0]))

    def site(self, frames: Sequence[Frame]) -> tuple[str, str, tuple[str, ...]]:
        """(site, function, stack): the innermost user frame and the stack, user's first
        (this module's own frames left out)."""
        user = [f for f in frames if self._user(f[0])]
        rest = [f for f in frames if not self._user(f[0]) and f[0] != __file__]
        ordered = [*user, *rest][:STACK_SHOWN]
        stack = tuple(f"{self.shown(f[0])}:{f[1]} in {f[2]}" for f in ordered)
        if not user:
            return "", "", stack
        file, line, function = user[0]
        return f"{self.shown(file)}:{line}", function, stack
