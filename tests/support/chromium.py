"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

Standard library only: the browser reads JSON commands, each ended by a NUL byte, on its file
descriptor 3 and writes replies and events to descriptor 4. Through it a test loads a page at a
given viewport, reads what the console reported (exceptions, ``console.error``, CSP violations,
failed loads), measures the layout with an expression the DevTools evaluate (not subject to the
page's Content-Security-Policy, so the page under test is not modified to be measured), switches
to print media (``Emulation.setEmulatedMedia``: the print stylesheet applies, as when printing),
takes screenshots and prints to PDF.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if (found := shutil.which(name))
    ),
    None,
)


class Chromium:
    """One headless browser with one page; use as a context manager."""

    def __init__(self, profile: Path, timeout: float = 60.0) -> None:
        assert CHROMIUM is not None
        self.timeout = timeout
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        # the pipe ends moved out of the way (fd 10 up), then put on fds 3 and 4 by a small
        # Python launcher that execs Chromium (subprocess closes what a preexec_fn opens)
        r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        launch = (
            f"import os,sys; os.dup2({r},3); os.dup2({w},4); os.execv(sys.argv[1], sys.argv[1:])"
        )
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-c", launch, CHROMIUM, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(r, w),
        )  # fmt: skip
        os.close(r)
        os.close(w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, RuntimeError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply; events seen meanwhile are kept."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        seen = len(self.events)
        while True:
            for e in self.events[seen:]:
                if e["method"] == event:
                    return e
            seen = len(self.events)
            e = self._read(deadline)
            if "method" in e:
                self.events.append(e)

    def viewport(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)  # fmt: skip

    def media(self, media: str) -> None:
        """``"print"`` lays the page out with its print stylesheet, ``""`` back to screen."""
        self.call("Emulation.setEmulatedMedia", session=True, media=media)

    def load(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools: the page's CSP does not
        apply to it, and it is not a script of the page)."""
        out = self.call("Runtime.evaluate", session=True, expression=expression,
                        returnByValue=True, awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in out:
            raise RuntimeError(f"probe failed: {out['exceptionDetails']}")
        return out["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        shot = self.call("Page.captureScreenshot", session=True, format="png",
                         captureBeyondViewport=full_page)  # fmt: skip
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def print_pdf(self, path: Path) -> Path:
        """Print as the browser's print dialog would: the page's own @page size and margins."""
        pdf = self.call("Page.printToPDF", session=True, preferCSSPageSize=True,
                        paperWidth=8.27, paperHeight=11.69, printBackground=True)  # fmt: skip
        path.write_bytes(base64.b64decode(pdf["data"]))
        return path

    def problems(self) -> list[str]:
        """What the console showed since the last load: exceptions, console errors and warnings,
        log errors (CSP violations, failed loads), failed requests."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in (
                "error",
                "warning",
                "assert",
            ):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") in (
                "error",
                "warning",
            ):
                out.append(f"log {p['entry'].get('source')}: {p['entry'].get('text')}")
            elif e["method"] == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')} {p.get('blockedReason', '')}")
        return out


def png_stats(path: Path, rows: int = 480) -> tuple[int, int, float]:
    """Width, height and the standard deviation of the grey level over the top ``rows`` rows
    (a blank page is ~0). Decodes 8-bit RGB/RGBA PNGs with every filter type (Chromium's use
    Sub, Up and Paeth), in plain Python: the top of a page is plenty, and fast enough."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format {depth}/{colour}"
    bpp = 3 if colour == 2 else 4
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    total = total_sq = 0.0
    count = 0
    for y in range(min(height, rows)):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        prev = line
        if y % 4 == 0:  # every fourth row, every fourth pixel: plenty for a variance
            for x in range(0, width, 4):
                grey = sum(line[x * bpp : x * bpp + 3]) / 3
                total += grey
                total_sq += grey * grey
                count += 1
    mean = total / count
    return width, height, max(total_sq / count - mean * mean, 0.0) ** 0.5


def pdf_text_runs(path: Path) -> list[int]:
    """How many text-showing operators (``Tj``/``TJ``) each page of a PDF has, in page order:
    a page holding only a heading has one or two. Reads Chromium's PDFs (uncompressed object
    syntax, Flate-compressed content streams), standard library only."""
    data = path.read_bytes()
    objs = {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}

    def content(body: bytes) -> bytes:
        out = b""
        refs = re.search(rb"/Contents\s*(\[[^\]]*\]|\d+ 0 R)", body)
        for ref in re.findall(rb"(\d+) 0 R", refs[1] if refs else b""):
            obj = objs[int(ref)]
            raw = re.search(rb"stream\r?\n(.*?)\r?\nendstream", obj, re.S)
            assert raw is not None, "a content stream"
            out += zlib.decompress(raw[1]) if b"FlateDecode" in obj else raw[1]
        return out

    def pages(body: bytes) -> list[bytes]:
        if not re.search(rb"/Type\s*/Pages", body):
            return [body]
        kids = re.search(rb"/Kids\s*\[([^\]]*)\]", body)
        refs = re.findall(rb"(\d+) 0 R", kids[1] if kids else b"")
        return [p for ref in refs for p in pages(objs[int(ref)])]

    root = next(
        b for b in objs.values() if re.search(rb"/Type\s*/Pages", b) and b"/Parent" not in b
    )
    return [len(re.findall(rb"\bT[Jj]\b", content(p))) for p in pages(root)]
