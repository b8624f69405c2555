"""A factory whose regression shows in 80% of runs, for benchmarks/bench_shrink.py.

At import, once per worker process (each run imports its factory fresh), it picks the buggy
``keepalive-mutating`` build with probability 0.8 (from ``os.urandom``, so forked workers do
not share the draw) and the fixed ``keepalive-fixed`` build otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import openai

from harness.variants import keepalive_fixed, keepalive_mutating

SHOW_RATE = 0.8
BUGGY = int.from_bytes(os.urandom(4), "big") < SHOW_RATE * 2**32


def create_openai_client(client_kwargs: dict[str, Any], *, shared: bool) -> openai.OpenAI:
    build = keepalive_mutating if BUGGY else keepalive_fixed
    return build.create_openai_client(client_kwargs, shared=shared)
