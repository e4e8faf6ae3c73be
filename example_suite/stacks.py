"""Two small OpenAI-compatible HTTP servers standing in for an old and a new serving stack.

They answer arithmetic questions the way a model would ("The answer is 42."). The new stack
behaves like an aggressive quantization: identical on additions, but it gets a share of the
multiplications with larger numbers wrong. Nothing here is the plugin's code: the gate talks to
these servers over HTTP exactly as it talks to vLLM, SGLang or a hosted API.
"""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

QUESTION = re.compile(r"What is (-?\d+) ([+*x-]) (-?\d+)\?")


def answer(prompt: str, stack: str) -> str:
    m = QUESTION.search(prompt)
    if m is None:
        return "I don't know."
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    large = op in "*x" and max(abs(a), abs(b)) >= 20
    # A deterministic share of large products comes out wrong, as low-bit weights do.
    if stack == "candidate" and large and zlib.crc32(prompt.encode()) % 100 < 18:
        value += 10
    return f"The answer is {value}."


class _Handler(BaseHTTPRequestHandler):
    stack = "baseline"
    model = "example-model"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        payload = json.loads(self.rfile.read(length) or b"{}")
        if self.path.endswith("/chat/completions"):
            prompt = payload["messages"][-1]["content"]
            text = answer(prompt, self.stack)
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            obj = "chat.completion"
        elif self.path.endswith("/completions"):
            text = answer(payload["prompt"], self.stack)
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
            obj = "text_completion"
        else:
            self._send(404, {"error": {"message": "not found"}})
            return
        self._send(
            200,
            {
                "id": "cmpl-example",
                "object": obj,
                "created": int(time.time()),
                "model": self.model,
                "choices": [choice],
                "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
            },
        )


def serve(stack: str) -> tuple[ThreadingHTTPServer, str]:
    """Start one stack on a free port of 127.0.0.1; returns the server and its /v1 base URL."""
    handler = type(f"{stack.title()}Handler", (_Handler,), {"stack": stack})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
