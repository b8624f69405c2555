"""A mock OpenAI API on loopback with connection-level faults.

Endpoints, faults and the control path are described in docs/mockserver.md. What answers
which request (:mod:`.routing`, :mod:`.request`, :mod:`.bodies`, :mod:`.templates`,
:mod:`.payload`), the fault scheduler (:mod:`.faults`), the framing (:mod:`.wire`) and each
connection's state machine (:mod:`.machine`) are sans-IO; :class:`MockServer` is the thin
asyncio + h11 layer that serves them on real sockets. It is imported on first use, so the
sans-IO modules import without it (the zygote's warm-up answers with the templates alone).
"""

import typing as _typing

if _typing.TYPE_CHECKING:
    from harness.mockserver.server import MockServer, check_loopback

__all__ = ["MockServer", "check_loopback"]


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from harness.mockserver import server

    value: object = getattr(server, name)
    globals()[name] = value
    return value
