"""The secrets policy: which environment values may be written, and the text safety net."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.redact import (
    REDACTED,
    SHOWN_KEYS,
    given_values,
    looks_secret,
    redact_env,
    redact_pairs,
    replace_values,
    scrub,
    scrub_file,
    secret_values,
)


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "api_key",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "HTTP_AUTHORIZATION",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "cookie_jar",
        "XDG_SESSION_ID",
        "MyAuthThing",
    ],
)
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "CI", "PYTHONPATH", "GATEWAY_CONFIG"])
def test_names_that_do_not_look_secret(name: str) -> None:
    assert not looks_secret(name)


def test_the_allowlist_holds_no_secret_looking_name() -> None:
    assert not any(looks_secret(k) for k in SHOWN_KEYS)


def test_redact_env_drops_secret_names_and_hides_values_off_the_allowlist() -> None:
    env = {
        "PATH": "/venv/bin:/usr/bin",
        "OPENAI_API_KEY": "sk-abc",
        "GATEWAY_CONFIG": "/etc/gw.yaml",
        "HOME": "/home/me",
        "github_token": "ghp_x",
        "LANG": "C.UTF-8",
    }
    assert redact_env(env) == {
        "PATH": "/venv/bin:/usr/bin",
        "GATEWAY_CONFIG": REDACTED,
        "HOME": "/home/me",
        "LANG": REDACTED,
    }
    assert list(redact_env(env)) == ["PATH", "GATEWAY_CONFIG", "HOME", "LANG"]  # order kept
    assert env["OPENAI_API_KEY"] == "sk-abc"  # the input is not touched


def test_redact_pairs_keeps_order_and_repeats() -> None:
    pairs = (("HOME", "/tmp/h"), ("MY_TOKEN", "t0k3n"), ("MODE", "fast"), ("HOME", "/tmp/i"))
    assert redact_pairs(pairs) == (("HOME", "/tmp/h"), ("MODE", REDACTED), ("HOME", "/tmp/i"))
    assert redact_pairs(()) == ()


def test_secret_values_are_the_long_values_of_secret_names_longest_first() -> None:
    env = {
        "A_KEY": "abcdefgh",  # 8 characters: searched for
        "B_TOKEN": "abcdefghijkl",
        "SHORT_SECRET": "1234567",  # 7: left alone, it would garble text
        "PLAIN": "plain-but-long-value",
        "C_AUTH": "abcdefgh",  # a repeated value counts once
    }
    assert secret_values(env) == ("abcdefghijkl", "abcdefgh")


def test_scrub_replaces_every_occurrence_and_nothing_else() -> None:
    env = {"OPENAI_API_KEY": "sk-0123456789", "X_SECRET": "sk-0123456789-long", "PLAIN": "text"}
    text = "a sk-0123456789-long b sk-0123456789 c text 1234567"
    assert scrub(text, env) == f"a {REDACTED} b {REDACTED} c text 1234567"
    assert scrub("nothing here", env) == "nothing here"
    assert replace_values("x y x", ("x",)) == f"{REDACTED} y {REDACTED}"


def test_scrub_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDACT_TEST_TOKEN", "tok-default-env-0001")
    assert scrub("is tok-default-env-0001 here") == f"is {REDACTED} here"


def test_scrub_file_rewrites_only_a_file_that_holds_a_secret(tmp_path: Path) -> None:
    env = {"DEPLOY_KEY": "deploy-key-value-42"}
    dirty, clean = tmp_path / "dirty.log", tmp_path / "clean.log"
    dirty.write_bytes(b"\xff binary then deploy-key-value-42 end\n")
    clean.write_bytes(b"nothing secret\n")
    before = clean.stat().st_mtime_ns
    assert scrub_file(dirty, env) is True
    assert scrub_file(clean, env) is False
    assert dirty.read_bytes() == b"\xff binary then <redacted> end\n"
    assert clean.stat().st_mtime_ns == before


def test_given_values_are_the_long_values_redact_pairs_hides_whatever_their_names() -> None:
    pairs = (
        ("GATEWAY_MODE", "mode-0123456789"),  # a harmless name: hidden all the same
        ("MY_TOKEN", "tok-0123456789abc"),
        ("HOME", "/home/somebody"),  # on the allowlist: written, so not searched for
        ("MODE", "fast"),  # 4 characters: it would garble text
    )
    assert given_values(pairs) == ("tok-0123456789abc", "mode-0123456789")


def test_scrub_file_also_removes_given_values_raw_and_as_json_spells_them(tmp_path: Path) -> None:
    given = 'mode "quoted" \\ caf\u00e9-0123'  # JSON escapes the quotes, \\ and é
    log = tmp_path / "check.json"
    text = f"{given}\n" + json.dumps({"error": f"RuntimeError: {given}"}) + "\n"
    log.write_text(text, encoding="utf-8")
    assert scrub_file(log, {}, (given,)) is True
    assert log.read_text(encoding="utf-8") == (
        f'{REDACTED}\n{{"error": "RuntimeError: {REDACTED}"}}\n'
    )
