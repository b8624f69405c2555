"""A mock OpenAI API on loopback with connection-level faults.

Endpoints, faults and the control path are described in docs/mockserver.md. What answers
which request (:mod:`.routing`, :mod:`.request`, :mod:`.bodies`, :mod:`.templates`,
:mod:`.payload`), the fault scheduler (:mod:`.faults`), the framing (:mod:`.wire`) and each
connection's state machine (:mod:`.machine`) are sans-IO; :class:`MockServer` is the thin
asyncio + h11 layer that serves them on real sockets.
"""

from harness.mockserver.server import MockServer, check_loopback

__all__ = ["MockServer", "check_loopback"]
