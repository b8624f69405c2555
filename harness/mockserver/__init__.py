"""A mock OpenAI API on loopback with connection-level faults.

Endpoints, faults and the control path are described in docs/mockserver.md. The protocol and
the fault scheduler are sans-IO (:mod:`.protocol`, :mod:`.faults`); :class:`MockServer` is the
thin asyncio + h11 layer that serves them on real sockets.
"""

from harness.mockserver.server import MockServer, check_loopback

__all__ = ["MockServer", "check_loopback"]
