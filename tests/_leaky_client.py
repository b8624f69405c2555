"""A child process for `harness watch` tests: one keep-alive HTTP connection to a mock server
every EVERY seconds, until its stdin closes (then it exits).

``leak`` keeps every connection object, so each socket sits in CLOSE_WAIT once the server
reaps it with a FIN; ``close`` closes each one after its answer (the healthy client).

    python tests/_leaky_client.py PORT leak|close EVERY
"""

from __future__ import annotations

import http.client
import json
import os
import select
import sys

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "ping"}]})


def main(port: int, mode: str, every_s: float) -> None:
    held = []
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
        conn.getresponse().read()
        if mode == "leak":
            held.append(conn)  # never closed: CLOSE_WAIT after the server's FIN
        else:
            conn.close()
        readable, _, _ = select.select([sys.stdin], [], [], every_s)
        if readable and not os.read(sys.stdin.fileno(), 1):
            return  # stdin closed: the test wants this process gone


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]))
