"""Run a command on a real pseudo-terminal, as a user's shell would, and read what it drew."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = 240, columns: int = 0
) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; return (code, all output).

    ``columns``: the terminal's width (its window size, as a resized window sets it)."""
    master, slave = os.openpty()
    if columns:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=dict(env)
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=timeout)
    return code, b"".join(chunks).decode("utf-8", "replace")
