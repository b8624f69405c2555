"""Who holds the sockets a sample found: :class:`Holder` values and their wording.

With attribution on (``--attribute``; :mod:`harness.attribution` records them in the worker),
each sample that finds sockets toward the mock server in CLOSE_WAIT or ESTABLISHED carries
``held_by``: one :class:`Holder` per group of HTTP clients (or bare connection pools) created
at the same place in the same circumstances, with how many of the sockets they hold. A socket
no recorded pool holds is a holder of kind ``""``. Values only: this module imports nothing of
the harness, and every report format words a holder with :func:`describe`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["ROW_HEADER", "Holder", "Role", "describe", "row", "turns_text"]

# Which OpenAI clients wrap the HTTP client: only the shared client(s) the gateway built with
# ``shared=True``, only per-request clients, both (the regression's signature), or neither
# (no OpenAI client built by a factory call wraps it; ``other_clients`` may still count
# clients built elsewhere, e.g. a provider rebuilding its client during a call).
Role = Literal["shared", "request", "both", "neither"]


@dataclass(frozen=True)
class Holder:
    """Sockets held by ``objects`` HTTP clients (or pools) of ``kind`` created at ``site``."""

    sockets: int
    close_wait: int
    established: int
    objects: int  # distinct HTTP clients (or pools, when no client owns them)
    kind: str  # "httpx.Client", "httpx2.AsyncClient", "httpcore.ConnectionPool"; "" unowned
    site: str = ""  # "gateway/clients.py:42": the innermost frame of the user's code
    function: str = ""  # the function at ``site``
    via: str = ""  # the next frame of the user's code, "path:line in function" ("": none)
    # "path:line in function", the user's frames first (innermost first), then the rest
    stack: tuple[str, ...] = ()
    # Built while the factory ran with this ``shared``; None: outside any factory call
    # (at import, or by code the gateway called through a client).
    shared: bool | None = None
    turns: tuple[int, ...] = ()  # the turns they were built in (1: at the gateway's opening)
    shared_clients: int = 0  # OpenAI clients built with shared=True that wrap them
    request_clients: int = 0  # OpenAI clients built with shared=False that wrap them
    other_clients: int = 0  # OpenAI clients built outside any factory call that wrap them
    pool: str = ""  # the connection pool's kind, "httpcore.ConnectionPool"
    # where the pool was built, when in another function than ``site`` (an own transport)
    pool_site: str = ""

    @property
    def role(self) -> Role:
        if self.shared_clients and self.request_clients:
            return "both"
        if self.shared_clients:
            return "shared"
        return "request" if self.request_clients else "neither"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stack"] = list(self.stack)
        data["turns"] = list(self.turns)
        data["role"] = self.role
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Holder:
        fields = {k: v for k, v in data.items() if k != "role"}
        fields["stack"] = tuple(fields.get("stack", ()))
        fields["turns"] = tuple(fields.get("turns", ()))
        return cls(**fields)


def turns_text(turns: Sequence[int]) -> str:
    """``"turn 1"``, ``"turns 1-10"``, ``"turns 1, 3, 7"``."""
    if not turns:
        return ""
    if len(turns) == 1:
        return f"turn {turns[0]}"
    if list(turns) == list(range(turns[0], turns[-1] + 1)):
        return f"turns {turns[0]}-{turns[-1]}"
    return "turns " + ", ".join(map(str, turns))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _circumstances(holder: Holder) -> str:
    if holder.shared is None:
        return "outside the factory"
    turns = turns_text(holder.turns)
    return f"shared={holder.shared}" + (f", {turns}" if turns else "")


def _uses(holder: Holder) -> str:
    shared = _plural(holder.shared_clients, "shared client")
    request = _plural(holder.request_clients, "request client")
    other = _plural(holder.other_clients, "OpenAI client")
    text = {
        "both": f"used by {shared} and reused by {request}",
        "shared": f"used by {shared}",
        "request": f"used by {request}",
        "neither": "",
    }[holder.role]
    if holder.other_clients:
        built = f"{other} built outside the factory"
        text = f"{text}, and by {built}" if text else f"used by {built}"
    return text or "wrapped by no OpenAI client"


def describe(holder: Holder) -> str:
    """One line: ``3 sockets held by one httpx.Client created at gateway/clients.py:42 in
    create_openai_client (shared=True, turn 1), used by 1 shared client and reused by 11
    request clients``."""
    sockets = _plural(holder.sockets, "socket")
    if not holder.kind:
        return f"{sockets} held by no connection pool the attribution saw being created"
    objects = f"one {holder.kind}" if holder.objects == 1 else f"{holder.objects} {holder.kind}s"
    where = f"created at {holder.site} in {holder.function}" if holder.site else "created"
    if holder.via:
        where += f" called from {holder.via}"
    pool = f"; its {holder.pool} created at {holder.pool_site}" if holder.pool_site else ""
    return f"{sockets} held by {objects} {where} ({_circumstances(holder)}), {_uses(holder)}{pool}"


# The short "held by" table of the Markdown and HTML reports.
ROW_HEADER = ("sockets", "held by", "created at", "built", "used by")


def row(holder: Holder) -> tuple[str, str, str, str, str]:
    """One row of the "held by" table, in :data:`ROW_HEADER` order."""
    states = f"{holder.close_wait} CLOSE_WAIT, {holder.established} ESTABLISHED"
    sockets = f"{holder.sockets} ({states})"
    if not holder.kind:
        return sockets, "no pool seen", "", "", ""
    objects = f"{holder.objects} x {holder.kind}"
    where = f"{holder.site} in {holder.function}" if holder.site else "(no frame of yours)"
    if holder.via:
        where += f", called from {holder.via}"
    if holder.pool_site:
        where += f"; pool at {holder.pool_site}"
    return sockets, objects, where, _circumstances(holder), _uses(holder)
