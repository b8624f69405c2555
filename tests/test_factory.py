"""resolve_factory: bundled names, module and file specs, and every FactoryError path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import FactoryError, UsageError
from harness.factory import check_spec, resolve_factory
from harness.variants import BUNDLED, module_name


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A checkout directory; sys.path and sys.modules are restored afterwards."""
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    yield tmp_path
    sys.path[:] = path_before
    for name in set(sys.modules) - modules_before:
        del sys.modules[name]


GOOD = (
    "def create_openai_client(client_kwargs, *, shared):\n"
    "    return ('made', dict(client_kwargs), shared)\n"
)


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_name_resolves_to_its_module_function(name: str, root: Path) -> None:
    factory = resolve_factory(name, root)
    assert factory.__module__ == module_name(name)
    assert factory.__name__ == "create_openai_client"


def test_module_spec_imports_from_root_first(root: Path) -> None:
    package = root / "gw_pkg_mod"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "clients.py").write_text(GOOD)
    factory = resolve_factory("gw_pkg_mod.clients:create_openai_client", root)
    assert factory({"a": 1}, shared=True) == ("made", {"a": 1}, True)
    assert sys.path[0] == str(root.resolve())


def test_file_spec_is_relative_to_root_and_may_import_siblings(root: Path) -> None:
    (root / "src").mkdir()
    (root / "gw_sibling_helper.py").write_text("VALUE = 'sibling'\n")
    (root / "src" / "factory.py").write_text(
        "import gw_sibling_helper\n"
        "def make(client_kwargs, *, shared):\n"
        "    return gw_sibling_helper.VALUE, shared\n"
    )
    factory = resolve_factory("src/factory.py:make", root)
    assert factory({}, shared=False) == ("sibling", False)


def test_the_same_root_is_put_on_sys_path_once(root: Path) -> None:
    (root / "gw_once.py").write_text(GOOD)
    resolve_factory("gw_once:create_openai_client", root)
    resolve_factory("gw_once:create_openai_client", root)
    assert sys.path.count(str(root.resolve())) == 1


def test_factory_error_is_a_usage_error() -> None:
    assert issubclass(FactoryError, UsageError)


def _error(spec: str, root: Path) -> str:
    with pytest.raises(FactoryError) as info:
        resolve_factory(spec, root)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"factory {spec!r}: ")
    return message[len(f"factory {spec!r}: ") :]


def test_unknown_name_lists_the_forms(root: Path) -> None:
    assert _error("keepalive-broken", root) == (
        "not a known variant or spec; use a bundled variant (baseline, keepalive-mutating, "
        "keepalive-fixed, shared-http-client, baseline-async, keepalive-mutating-async, "
        "keepalive-fixed-async, shared-http-client-async, provider-keeps-closed, "
        "provider-rebuild-on-closed, provider-atomic-swap, provider-keeps-closed-async, "
        "provider-rebuild-on-closed-async, provider-atomic-swap-async), "
        "`package.module:function` or "
        "`path/to/file.py:function` (relative to --root, or absolute)"
    )


@pytest.mark.parametrize("spec", [":make", "gw_x:", ""])
def test_spec_with_an_empty_part_is_rejected(spec: str, root: Path) -> None:
    assert _error(spec, root).startswith("not a known variant or spec; use a bundled variant")


def test_missing_module(root: Path) -> None:
    message = _error("gw_no_such_module:make", root)
    assert message == (
        f"cannot import module 'gw_no_such_module' (root {str(root)!r}): ModuleNotFoundError: "
        "No module named 'gw_no_such_module'; check the spec and --root"
    )


def test_module_that_raises_while_importing(root: Path) -> None:
    (root / "gw_raises.py").write_text("raise RuntimeError('boom at import')\n")
    assert _error("gw_raises:make", root) == (
        f"cannot import module 'gw_raises' (root {str(root)!r}): RuntimeError: boom at import; "
        "check the spec and --root"
    )


def test_missing_file(root: Path) -> None:
    missing = root / "nope" / "factory.py"
    assert _error("nope/factory.py:make", root) == (
        f"no file {str(missing)!r}; a relative path is relative to --root "
        "(the checkout under test), an absolute one is used as is"
    )


def test_absolute_adapter_outside_root_imports_the_checkout_first(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (root / "gw_adapted").mkdir()
    (root / "gw_adapted" / "__init__.py").write_text("")
    (root / "gw_adapted" / "agent.py").write_text(
        "class Agent:\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('too costly')\n"
        "    def _create_openai_client(self, client_kwargs, *, shared):\n"
        "        return ('method', dict(client_kwargs), shared)\n"
    )
    outside = tmp_path_factory.mktemp("adapters") / "adapter.py"
    outside.write_text(
        "import gw_adapted.agent\n"
        "def make(client_kwargs, *, shared):\n"
        "    agent = object.__new__(gw_adapted.agent.Agent)\n"
        "    return agent._create_openai_client(client_kwargs, shared=shared)\n"
    )
    sys.path.append(str(root.resolve()))  # already on the path, but last: moved to the front
    factory = resolve_factory(f"{outside}:make", root)
    assert factory({"k": 1}, shared=False) == ("method", {"k": 1}, False)
    assert sys.path[0] == str(root.resolve())
    assert sys.path.count(str(root.resolve())) == 1


def test_file_with_a_syntax_error(root: Path) -> None:
    (root / "broken.py").write_text("def make(:\n")
    message = _error("broken.py:make", root)
    assert message.startswith(f"importing {str(root / 'broken.py')!r} failed: SyntaxError: ")
    assert not [name for name in sys.modules if name.startswith("_harness_factory_broken_")]


def test_missing_attribute(root: Path) -> None:
    (root / "gw_noattr.py").write_text(GOOD)
    assert _error("gw_noattr:make", root) == (
        "module 'gw_noattr' has no function 'make'; check the name after ':' in the spec"
    )
    # a file is named as the user wrote it, not by the module name it is loaded under
    (root / "clients.py").write_text(GOOD)
    assert _error("clients.py:nope", root) == (
        f"{str(root / 'clients.py')!r} has no function 'nope'; check the name after ':' in the spec"
    )


def test_check_spec_refuses_without_running_user_code(root: Path) -> None:
    with pytest.raises(FactoryError, match=r"^factory 'nope\.py:make': no file "):
        check_spec("nope.py:make", root)
    with pytest.raises(FactoryError, match=r"^factory 'missing': not a known variant or spec"):
        check_spec("missing", root)
    # what only an import can tell is left to the worker: nothing here runs the user's code
    (root / "loud.py").write_text("raise SystemExit('imported')\n")
    for spec in ("loud.py:make", "no_such_module:make", "keepalive-fixed"):
        check_spec(spec, root)
    assert not [name for name in sys.modules if "loud" in name]


def test_attribute_that_is_not_callable(root: Path) -> None:
    (root / "gw_notcallable.py").write_text("make = 42\n")
    assert _error("gw_notcallable:make", root) == "'make' is a int, not a function"


def test_function_with_the_wrong_signature(root: Path) -> None:
    (root / "gw_badsig.py").write_text("def make(client_kwargs):\n    return None\n")
    assert _error("gw_badsig:make", root) == (
        "(client_kwargs) does not accept (client_kwargs, *, shared): "
        "got an unexpected keyword argument 'shared'"
    )
