"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers deterministically.

It answers a chat completion with ``answer(prompt)`` and counts the requests it served, so
tests can check concurrency, caching and error handling over real HTTP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def last_input(prompt: str) -> str:
    """The text after 'Input: ' in a zero-shot prompt."""
    return prompt.split("Input: ")[-1].split("\nOutput:")[0]


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) refuses bursts of concurrent clients

    def __init__(self, answer: Callable[[str], str], models: tuple[str, ...]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer, self.models = answer, models
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append({**body, "authorization": self.headers.get("Authorization")})
        if body["model"] not in self.server.models:
            self._send(404, {"error": {"message": f"model {body['model']} not found", "type": "not_found"}})
            return
        prompt = body["messages"][-1]["content"]
        text = self.server.answer(prompt)
        self._send(200, {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                      "total_tokens": len(prompt.split()) + len(text.split())},
        })


@contextmanager
def stub_server(answer: Callable[[str], str], models: tuple[str, ...] = ("stub",)) -> Iterator[StubServer]:
    server = StubServer(answer, models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
