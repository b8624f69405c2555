"""What of the environment the harness may write or print: the one place for that policy.

Users run the harness where real credentials live (their shell, their CI), and its files are
uploaded as build artifacts, so nothing it writes or prints may hold an environment value
that could be a secret. Two rules, both pure functions of a mapping:

1. Structure (:func:`redact_env`, :func:`redact_pairs`): wherever the harness records an
   environment (bisect's ``step-config.json``, the ``--env`` pairs in bisect.json and
   bisect.md), a variable whose *name* looks secret (:func:`looks_secret`: it contains
   ``KEY``, ``TOKEN``, ``SECRET``, ``PASSWORD``, ``AUTH``, ``CREDENTIAL``, ``COOKIE`` or
   ``SESSION``, in any case) is left out, name and value; a variable on the allowlist
   :data:`SHOWN_KEYS` keeps its value; every other one keeps its name, its value reads
   :data:`REDACTED`.
2. Text (:func:`scrub`): a safety net for text the harness does not compose itself (error
   messages and output of the code under test, install logs). Every value of a secret-named
   variable at least :data:`MIN_SECRET_CHARS` long is replaced by :data:`REDACTED`. Shorter
   values (``1``, ``true``) are left alone: replacing them would garble the text and they
   hide nothing. Values of other variables are not searched for (``LANG=C.UTF-8`` would
   garble every report); rule 1 keeps them out of what the harness composes. Values the
   user gave the harness itself to pass on (bisect's ``--env``) are few and known:
   :func:`given_values` adds those rule 1 would hide to the net of the files bisect's
   children write (:func:`scrub_file`'s ``also``).

The fingerprint (Python, SDK and HTTP stack versions, OS) is not read from the environment
(:mod:`harness.environment`), so no report needs an environment value to say what ran.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "SECRET_NAME_PARTS",
    "SHOWN_KEYS",
    "given_values",
    "looks_secret",
    "redact_env",
    "redact_pairs",
    "replace_values",
    "scrub",
    "scrub_file",
    "secret_values",
]

REDACTED: Final = "<redacted>"

# A name containing one of these (case-insensitive) is never written, not even the name.
SECRET_NAME_PARTS: Final = (
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "AUTH",
    "CREDENTIAL",
    "COOKIE",
    "SESSION",
)

# Harmless keys whose values may be written: what a reader needs to replay an oracle call
# (interpreter, import path, virtualenv, home) and what bisect sets itself. Kept short on
# purpose; a key earns its place by being needed in a report, not by being harmless.
SHOWN_KEYS: Final = frozenset(
    {"PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "HARNESS_PYTHON", "PYTHONDONTWRITEBYTECODE"}
)

MIN_SECRET_CHARS: Final = 8


def looks_secret(name: str) -> bool:
    """Whether a variable called ``name`` may hold a secret by its name alone."""
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS)


def _shown(name: str, value: str) -> str:
    return value if name in SHOWN_KEYS else REDACTED


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` as it may be written: secret-named keys left out, the values of keys not in
    :data:`SHOWN_KEYS` replaced by :data:`REDACTED`; the order of ``env`` is kept."""
    return {k: _shown(k, v) for k, v in env.items() if not looks_secret(k)}


def redact_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` pairs (bisect's ``--env``) as they may be written, in order; see
    :func:`redact_env`."""
    return tuple((k, _shown(k, v)) for k, v in pairs if not looks_secret(k))


def secret_values(env: Mapping[str, str]) -> tuple[str, ...]:
    """The values :func:`scrub` removes: those of secret-named variables at least
    :data:`MIN_SECRET_CHARS` long, longest first (so a value containing another goes whole)."""
    found = {v for k, v in env.items() if looks_secret(k) and len(v) >= MIN_SECRET_CHARS}
    return tuple(sorted(found, key=lambda v: (-len(v), v)))


def given_values(pairs: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The values of ``pairs`` (bisect's ``--env``) that :func:`redact_pairs` would not show
    (secret-named or off the allowlist), at least :data:`MIN_SECRET_CHARS` long, longest
    first: the user named them, so the net looks for them whatever their names."""
    found = {v for k, v in pairs if k not in SHOWN_KEYS and len(v) >= MIN_SECRET_CHARS}
    return tuple(sorted(found, key=lambda v: (-len(v), v)))


def replace_values(text: str, values: Sequence[str]) -> str:
    """``text`` with every one of ``values`` (as :func:`secret_values` orders them) replaced
    by :data:`REDACTED`. For a hot path that computed ``values`` once."""
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def scrub(text: str, env: Mapping[str, str] = os.environ) -> str:
    """``text`` with every value of :func:`secret_values` of ``env`` replaced by
    :data:`REDACTED` (``os.environ`` is read at the call: a variable set later counts too)."""
    return replace_values(text, secret_values(env))


def scrub_file(path: Path, env: Mapping[str, str], also: Sequence[str] = ()) -> bool:
    """Rewrite ``path`` (a log or JSON file another process wrote) with every value of
    :func:`secret_values` of ``env`` and of ``also`` (:func:`given_values`) replaced by
    :data:`REDACTED`, as written or as a JSON string spells it; return whether it held one.
    Bytes that are not UTF-8 are kept as they were."""
    texts = {*secret_values(env), *also}
    forms = {f for v in texts for f in (v, json.dumps(v)[1:-1])}
    values = sorted((f.encode("utf-8", "surrogateescape") for f in forms), key=lambda b: -len(b))
    data = path.read_bytes()
    if not any(v in data for v in values):
        return False
    for value in values:
        data = data.replace(value, REDACTED.encode())
    path.write_bytes(data)
    return True
