"""``harness bisect``: find the commit that introduced (or fixed) a connection-lifecycle bug.

Modules import in one direction: :mod:`.model` (values) -> :mod:`.report` (``bisect.json``)
-> :mod:`.search` (pure decisions: terms, calibration, the noisy search) -> :mod:`.render`
(progress lines, messages, ``bisect.md``) -> :mod:`.calibration` (judging the bounds, pure)
-> :mod:`.git` (plumbing, the private clone) -> :mod:`.bisectlog` (``bisect-log.txt``) ->
:mod:`.step` (one oracle call, process control) -> :mod:`.installenv` (the private virtualenv
for ``--install``) -> :mod:`.inputs` (validation, the report folder) -> :mod:`.driver` (the run);
its arguments and entry point are the ``bisect`` command, :mod:`harness.commands.bisect`.
Names are imported on first use, so importing a pure module never loads the driver.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BisectRequest", "Interrupted", "run_bisect"]

_HOMES = {
    "BisectRequest": "harness.bisect.model",
    "Interrupted": "harness.bisect.driver",
    "run_bisect": "harness.bisect.driver",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
