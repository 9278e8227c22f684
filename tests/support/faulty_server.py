"""A misbehaving OpenAI-compatible server on loopback, for the backend tests and the engine's flow tests."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultyServer:
    """A /v1/chat/completions server on 127.0.0.1. The last user message picks the behaviour:

    "ok ..."           200, echoes the message, finish_reason stop
    "r429:N ..."       429 with Retry-After: 1 for the first N attempts, then ok
    "e500:N ..."       500 for the first N attempts, then ok
    "always500 ..."    500 forever
    "slow:N ..."       sleeps `slow_seconds` (longer than the client's timeout) for N attempts, then ok
    "length ..."       200 with finish_reason length
    "malformed ..."    200 with a truncated JSON body
    "nochoices ..."    200 with {"choices": []}
    "badrequest ..."   400
    "hold ..."         sleeps `hold_seconds`, then ok (to observe concurrency)

    `served_model` (if set) goes into every completion's `model` field; `listed_models` (if set) is what
    GET /v1/models answers (else that path is not implemented, like some servers).
    """

    def __init__(self, slow_seconds: float = 1.5, hold_seconds: float = 0.25):
        self.slow_seconds, self.hold_seconds = slow_seconds, hold_seconds
        self.attempts: dict[str, int] = {}
        self.arrivals: dict[str, list[float]] = {}
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.served_model: str | None = None
        self.listed_models: list[str] | None = None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                if self.path != "/v1/models" or server.listed_models is None:
                    return server._send(self, 404, {"error": "not found"})
                server._send(self, 200, {"object": "list", "data": [{"id": m, "object": "model"}
                                                                    for m in server.listed_models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
                with server.lock:
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    attempt = server.attempts[user] = server.attempts.get(user, 0) + 1
                    server.arrivals.setdefault(user, []).append(time.monotonic())
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self.counted = True
                try:
                    server.respond(self, user, attempt, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected for "slow"
                finally:
                    server.release(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def release(self, handler) -> None:
        """A request stops counting as in flight before its answer is written: once the client has the
        answer it may send the next request, which must not overlap this one in the count."""
        with self.lock:
            if getattr(handler, "counted", False):
                handler.counted = False
                self.in_flight -= 1

    def _send(self, handler, status: int, payload, headers: dict | None = None):
        self.release(handler)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(raw)

    def completion(self, text: str, finish: str = "stop") -> dict:
        return {"id": "x", "object": "chat.completion", **({"model": self.served_model} if self.served_model else {}),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 3, "total_tokens": 0}}

    def respond(self, h, user: str, attempt: int, body: dict):
        kind, _, rest = user.partition(" ")
        name, _, count = kind.partition(":")
        failing = attempt <= int(count or 0)
        if name == "r429" and failing:
            return self._send(h, 429, {"error": "rate limited"}, {"Retry-After": "1"})
        if name == "e500" and failing or name == "always500":
            return self._send(h, 500, {"error": "boom"})
        if name == "slow" and failing:
            time.sleep(self.slow_seconds)
            return self._send(h, 200, self.completion("too late"))
        if name == "length":
            return self._send(h, 200, self.completion("a truncated answ", "length"))
        if name == "malformed":
            return self._send(h, 200, b'{"choices": [{"message": {"content": "hal')
        if name == "nochoices":
            return self._send(h, 200, {"choices": []})
        if name == "badrequest":
            return self._send(h, 400, {"error": "bad request"})
        if name == "hold":
            time.sleep(self.hold_seconds)
        return self._send(h, 200, self.completion(f"answer to {user}"))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
