"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers deterministically or forwards,
and injects faults at configurable rates.

Good calls are answered with ``answer(prompt)``, or forwarded to ``upstream`` (another
OpenAI-compatible server, e.g. the local model server). Faults, drawn per request from a seeded
generator: ``rate_limit`` (429 with Retry-After), ``server_error`` (500), ``hang`` (no answer
for ``hang_seconds``, then the connection is closed), ``malformed`` (a 200 whose body is not
JSON), ``empty`` (a 200 whose message has no content) and ``disconnect`` (the connection is
closed without an answer). The server counts the requests it saw and the faults it injected.

    python -m tests.openai_stub --upstream http://127.0.0.1:8000/v1 --rate-limit 0.1 --hang 0.02
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("rate_limit", "server_error", "hang", "malformed", "empty", "disconnect")


def last_input(prompt: str) -> str:
    """The text after 'Input: ' in a zero-shot prompt."""
    return prompt.split("Input: ")[-1].split("\nOutput:")[0]


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) refuses bursts of concurrent clients

    def __init__(
        self, answer: Callable[[str], str] | None, models: tuple[str, ...], upstream: str | None = None,
        faults: Mapping[str, float] | None = None, seed: int = 0, hang_seconds: float = 3.0,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        unknown = set(faults or {}) - set(FAULTS)
        if unknown or sum((faults or {}).values()) > 1:
            raise ValueError(f"faults: unknown kinds {sorted(unknown)} or rates summing above 1")
        self.answer, self.models, self.upstream = answer, models, upstream
        self.faults, self.hang_seconds, self.retry_after = dict(faults or {}), hang_seconds, retry_after
        self.rng = random.Random(seed)
        self.requests: list[dict] = []
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def draw_fault(self) -> str | None:
        with self.lock:
            u, edge = self.rng.random(), 0.0
            for kind, rate in self.faults.items():
                edge += rate
                if u < edge:
                    self.injected[kind] += 1
                    return kind
        return None


class _Handler(BaseHTTPRequestHandler):
    server: StubServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do: dropped connections are real

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        with self.server.lock:
            self.server.requests.append({**body, "authorization": self.headers.get("Authorization"),
                                         "time": time.monotonic(), "client_port": self.client_address[1]})
        fault = self.server.draw_fault()
        if fault == "rate_limit":
            self._send(429, b'{"error": {"message": "slow down", "type": "rate_limit"}}',
                       {"Retry-After": f"{self.server.retry_after:g}"})
        elif fault == "server_error":
            self._send(500, b'{"error": {"message": "injected", "type": "server_error"}}')
        elif fault == "hang":
            time.sleep(self.server.hang_seconds)
            self._drop()
        elif fault == "disconnect":
            self._drop()
        elif fault == "malformed":
            self._send(200, b'{"id": "x", "choices": [{"message": ')
        elif fault == "empty":
            self._send(200, json.dumps(_completion(body["model"], None, 0, 0)).encode())
        elif self.server.upstream is not None:
            self._forward(raw)
        elif self.server.answer is not None and body["model"] not in self.server.models:
            self._send(404, json.dumps({"error": {"message": f"model {body['model']} not found",
                                                  "type": "not_found"}}).encode())
        else:
            assert self.server.answer is not None
            prompt = body["messages"][-1]["content"]
            text = self.server.answer(prompt)
            completion = _completion(body["model"], text, len(prompt.split()), len(text.split()))
            self._send(200, json.dumps(completion).encode())

    def _forward(self, raw: bytes) -> None:
        request = urllib.request.Request(f"{self.server.upstream}/chat/completions", data=raw,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as response:
            self._send(response.status, response.read())


def _completion(model: str, text: str | None, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


@contextmanager
def stub_server(
    answer: Callable[[str], str] | None = None, models: tuple[str, ...] = ("stub",), **options: object
) -> Iterator[StubServer]:
    """Serve on a free port for the duration; ``options`` as for StubServer."""
    server = StubServer(answer, models, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fault-injecting OpenAI-compatible server on 127.0.0.1: it "
                                     "forwards good calls to --upstream, or without one answers each with the "
                                     "prompt's input (model 'stub').")
    parser.add_argument("--upstream", help="the OpenAI-compatible base URL to forward good calls to")
    for kind in FAULTS:
        parser.add_argument(f"--{kind.replace('_', '-')}", type=float, default=0.0, help=f"rate of {kind} faults")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faults = {k: getattr(args, k) for k in FAULTS if getattr(args, k)}
    answer = None if args.upstream else last_input
    with stub_server(answer, upstream=args.upstream, faults=faults, seed=args.seed) as server:
        print(f"serving {server.base_url} -> {args.upstream or 'the input as the answer'} with faults {faults}",
              flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(dict(server.injected))


if __name__ == "__main__":
    main()
