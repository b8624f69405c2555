"""Bundled client factories, one module each, and the registry that names them.

Each module defines ``create_openai_client(client_kwargs, *, shared) -> OpenAI`` (the factory
contract in docs/factories.md) and a docstring saying which real change it models (the
``provider-*`` ones also ``terminate_openai_client``, and return a provider object for the
shared client); each
``*-async`` module is its sync twin's change on ``AsyncOpenAI`` and the stack's ``AsyncClient``.
``BUNDLED`` says whether the variant is meant to be healthy, ``PROVIDERS`` which ones model a
provider (a terminate hook); a scenario that does not list its variants runs every bundled one,
expecting fixed variants to pass and only observing the rest (in a scenario with lifecycle
events, every client-factory variant is observed: ``Scenario.variant_expectations``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = ["BUNDLED", "FIXED_VARIANTS", "PROVIDERS", "is_bundled", "module_name"]

# name -> True when the variant is a fixed (healthy) build, False when it carries a bug.
BUNDLED: Final = MappingProxyType(
    {
        "baseline": True,
        "keepalive-mutating": False,
        "keepalive-fixed": True,
        "shared-http-client": False,
        # The same history on openai.AsyncOpenAI and httpx.AsyncClient (async twins).
        "baseline-async": True,
        "keepalive-mutating-async": False,
        "keepalive-fixed-async": True,
        "shared-http-client-async": False,
        # A gateway's provider object keeping one client, and its terminate (issue 23).
        "provider-keeps-closed": False,
        "provider-rebuild-on-closed": False,
        "provider-atomic-swap": True,
        "provider-keeps-closed-async": False,
        "provider-rebuild-on-closed-async": False,
        "provider-atomic-swap-async": True,
    }
)
FIXED_VARIANTS: Final = tuple(name for name, fixed in BUNDLED.items() if fixed)
# The variants whose module defines ``terminate_openai_client``: the only ones that model how a
# gateway terminates its provider, which is what a scenario's lifecycle events judge.
PROVIDERS: Final = frozenset(name for name in BUNDLED if name.startswith("provider-"))


def is_bundled(name: str) -> bool:
    """True when ``name`` names a bundled variant."""
    return name in BUNDLED


def module_name(name: str) -> str:
    """The module that implements bundled variant ``name``."""
    return f"harness.variants.{name.replace('-', '_')}"
