"""Start real llama.cpp OpenAI-compatible servers on 127.0.0.1, one per model file.

Plain Python (no pytest) so the same code serves the live tests, the measurement scripts and a
person running the live gate by hand:

    python example_suite/live/servers.py F32 Q4_1      # prints one base_url per precision
    python example_suite/live/servers.py F32 Q2_K -- pytest ...   # serve, run the command, stop

Each server gets one thread: llama.cpp serves one request at a time per process, so a pair is
queried in parallel across two single-threaded servers rather than one server with two threads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

LIVE_DIR = Path(__file__).resolve().parent
MODELS_DIR = LIVE_DIR / "models"
MODEL_STEM = "SmolLM2-135M-Instruct"
PRECISIONS = ("F32", "Q8_0", "Q4_1", "Q2_K")
LOG_DIR = Path(tempfile.gettempdir()) / "parity-testbed-logs"


class ServerError(RuntimeError):
    """A server that did not start, with the log path that says why."""


def model_file(precision: str, models_dir: Path | None = None) -> Path:
    """Where setup_testbed.sh puts the SmolLM2 file of one precision (e.g. 'F32', 'Q4_1')."""
    return (models_dir or MODELS_DIR) / f"{MODEL_STEM}.{precision.upper()}.gguf"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # A killed pytest (CI timeout, SIGKILL) runs no finally: without this its servers outlive
    # it, each holding ~1 GB and a port. Linux only; elsewhere the context managers still stop them.
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Server:
    """One `python -m llama_cpp.server` process; use serve()/serve_many() rather than this."""

    def __init__(
        self,
        model_path: Path,
        *,
        python: str | None = None,
        log_dir: Path | None = None,
        n_ctx: int = 2048,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ServerError(
                f"{self.model_path}: model file not found "
                "(run: bash example_suite/live/setup_testbed.sh)"
            )
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        log_dir = log_dir or LOG_DIR
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.model_path.stem}.{self.port}.log"
        cmd = [
            python or sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--n_ctx",
            str(n_ctx),
            "--seed",
            "0",
            *extra_args,
        ]
        with open(self.log_path, "wb") as log:
            # A new session so a Ctrl-C in the terminal reaches us, not the servers, and we stop
            # them in order (SIGTERM waits for a running generation; SIGKILL ends it).
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(
                    f"llama.cpp server for {self.model_path.name} exited with code {code} "
                    f"before it was ready; log kept at {self.log_path}\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200 and "data" in json.loads(r.read()):
                        return
            except (OSError, ValueError):
                pass  # not listening yet, or half-started
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"llama.cpp server for {self.model_path.name} not ready after {timeout:.0f}s "
                    f"on {self.base_url}; log kept at {self.log_path}\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = 3.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def serve_many(
    models: Mapping[str, Path],
    *,
    python: str | None = None,
    log_dir: Path | None = None,
    ready_timeout: float = 60.0,
    keep_logs: bool = False,
    extra_args: Sequence[str] = (),
) -> Iterator[dict[str, str]]:
    """Start one server per entry ({name: model file}) and yield {name: base_url}.

    All start at once, then each is waited on, so a pair is ready in about the time of one.
    Logs are removed after a clean run and kept (path in the error) when a server fails.
    """
    servers: dict[str, Server] = {}
    failed = False
    try:
        for name, path in models.items():
            servers[name] = Server(path, python=python, log_dir=log_dir, extra_args=extra_args)
        for server in servers.values():
            server.wait_ready(ready_timeout)
        yield {name: s.base_url for name, s in servers.items()}
    except BaseException:
        failed = True
        raise
    finally:
        for server in servers.values():
            server.stop()
        if not (failed or keep_logs):
            for server in servers.values():
                with contextlib.suppress(OSError):
                    server.log_path.unlink()


@contextlib.contextmanager
def serve(model_path: Path, **kwargs: object) -> Iterator[str]:
    """Start one server for ``model_path`` and yield its base_url ("http://127.0.0.1:P/v1")."""
    with serve_many({"model": model_path}, **kwargs) as urls:  # type: ignore[arg-type]
        yield urls["model"]


def url_environment(urls: Mapping[str, str]) -> dict[str, str]:
    """Environment variables a contract can name: PARITY_LIVE_<NAME>_URL for each server, and
    PARITY_LIVE_BASELINE_URL / PARITY_LIVE_CANDIDATE_URL for the first two (old, new)."""
    env = {f"PARITY_LIVE_{name.upper()}_URL": url for name, url in urls.items()}
    for role, url in zip(("BASELINE", "CANDIDATE"), urls.values(), strict=False):
        env[f"PARITY_LIVE_{role}_URL"] = url
    return env


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description="Start one llama.cpp server per SmolLM2 precision (first = baseline, second = "
        "candidate) and print their base URLs; with `-- CMD...`, run CMD with the URLs in "
        "PARITY_LIVE_BASELINE_URL / PARITY_LIVE_CANDIDATE_URL / PARITY_LIVE_<NAME>_URL, then stop.",
    )
    parser.add_argument("precisions", nargs="*", default=["F32", "Q4_1"], help=str(PRECISIONS))
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    files = {p.upper(): model_file(p, args.models_dir) for p in args.precisions}
    try:
        with serve_many(files, ready_timeout=args.ready_timeout, keep_logs=not command) as urls:
            env = url_environment(urls)
            if command:
                return subprocess.run(command, env={**os.environ, **env}, check=False).returncode
            for name, url in urls.items():
                print(f"{name}\t{url}\t{files[name]}", flush=True)
            for key, value in env.items():
                print(f"export {key}={value}", flush=True)
            print("serving; Ctrl-C stops them", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
