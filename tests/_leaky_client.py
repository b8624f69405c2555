"""A child process for `harness watch` tests: one keep-alive HTTP connection to a mock server
every EVERY seconds. ``leak`` keeps each connection object (its socket sits in CLOSE_WAIT once
the server reaps it), ``close`` closes it after its answer. Stops after COUNT connections
(0: never), then exits.

    python tests/_leaky_client.py PORT leak|close EVERY COUNT
"""

from __future__ import annotations

import http.client
import json
import sys
import time

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "ping"}]})


def main(port: int, mode: str, every_s: float, count: int) -> None:
    held = []
    made = 0
    while count == 0 or made < count:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
        conn.getresponse().read()
        made += 1
        if mode == "leak":
            held.append(conn)  # never closed: CLOSE_WAIT after the server's FIN
        else:
            conn.close()
        time.sleep(every_s)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
