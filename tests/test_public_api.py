"""The public surface: `harness.__all__` is exactly what the package hands out."""

from __future__ import annotations

import subprocess
import sys

import pytest

import harness


def test_every_export_resolves_to_its_home_module() -> None:
    assert sorted(harness.__all__) == sorted(harness._HOMES)
    for name in harness.__all__:
        value = getattr(harness, name)
        assert value.__module__.startswith(harness._HOMES[name])


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = harness.nope  # type: ignore[attr-defined]


def test_worker_import_does_not_load_server_reports_or_matrix() -> None:
    code = (
        "import sys, harness.worker; "
        "print(sorted(m for m in ('harness.mockserver', 'harness.report', 'harness.matrix') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
