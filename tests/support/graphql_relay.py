"""A loopback HTTP relay in front of a Dagster webserver: counts launches, can hold one.

This is our own stand-in for the network between the trigger and a remote Dagster, not a
mock of Dagster: every request it lets through is answered by the real webserver behind it.
It exists because a real webserver cannot be made slow on demand. With no upstream it
answers every request 503 (a Dagster that is down), still counting what reached it, so a
test can prove that a refused request launched nothing.

    with GraphQLRelay(upstream="http://127.0.0.1:3000") as relay:
        relay.hold_launches("before")   # the next launchRun waits before being forwarded
        ...                             # the client times out: outcome unknown
        relay.release()                 # now it reaches Dagster
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_LIMIT_SECONDS = 120
"""A held request never waits longer than this, so a failed test cannot hang the relay."""


class GraphQLRelay:
    """Relay ``POST /graphql`` to ``upstream``; record launches; optionally hold one."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.launches: list[dict[str, Any]] = []
        self.launch_answers: list[dict[str, Any]] = []
        self.requests = 0
        self._hold: str | None = None
        self._released = threading.Event()
        self.forwarded = threading.Event()
        """Set when a held launch has been answered by the upstream."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hold_launches(self, when: str) -> None:
        """Hold the next launchRun ``"before"`` forwarding it or ``"after"`` (the run exists,
        the answer waits) until :meth:`release`; or ``"drop"`` it (answer 503, never forward:
        a launch lost on the way)."""
        self._hold = when
        self._released.clear()
        self.forwarded.clear()

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> GraphQLRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    # -- request handling ------------------------------------------------------------------
    def _forward(self, body: bytes) -> tuple[int, bytes]:
        if self.upstream is None:
            return 503, b'{"errors": [{"message": "relay has no upstream"}]}'
        request = urllib.request.Request(  # noqa: S310  (loopback test server)
            f"{self.upstream}/graphql",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def handle(self, body: bytes) -> tuple[int, bytes]:
        self.requests += 1
        query = json.loads(body or b"{}")
        if "launchRun" not in query.get("query", ""):
            return self._forward(body)
        self.launches.append(query.get("variables") or {})
        hold, self._hold = self._hold, None
        if hold == "drop":
            return 503, b'{"errors": [{"message": "dropped by the relay"}]}'
        if hold == "before":
            self._released.wait(HOLD_LIMIT_SECONDS)
        status, answer = self._forward(body)
        self.launch_answers.append(json.loads(answer or b"{}"))
        if hold is not None:
            self.forwarded.set()
        if hold == "after":
            self._released.wait(HOLD_LIMIT_SECONDS)
        return status, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = relay.handle(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the client gave up waiting (that is the point of holding)
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        return Handler
