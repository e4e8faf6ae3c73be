"""The sign-off page in print (issue 21 item 1): printed by headless Chromium to A4, everything
up to the sign-off block fits on the first page, for a run of a few tasks and for one of twenty
(passes collapsed to one line). Skipped where no Chromium is installed."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from run_builders import make_run

from pytest_parity import report
from pytest_parity.records import RunResult

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
    None,
)  # fmt: skip
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
    pytest.mark.slow,
]


def _printed_pages(tmp_path: Path, run: RunResult) -> int:
    page = report.to_html(run)
    # the page up to the end of the sign-off page, closed as the full report closes it
    cut = page[: page.index('<h2 class="pp-part" id="summary">')] + "</main></body></html>\n"
    src = tmp_path / "first.html"
    src.write_text(cut, encoding="utf-8")
    pdf = tmp_path / "first.pdf"
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}", src.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))


def _signed_run() -> RunResult:
    run = make_run()
    run["tasks"][0]["aa"] = {"n": 1000, "flips": 61, "flip_rate": 0.061}
    run["contract"]["description"] = "fp16 -> fp8 KV cache on the support bot"
    run["lock"] = {"digest": "ab" * 32, "entries": {}}  # type: ignore[typeddict-unknown-key]
    return run


def test_the_sign_off_page_prints_on_one_a4_page(tmp_path: Path) -> None:
    assert _printed_pages(tmp_path, _signed_run()) == 1


def test_twenty_tasks_still_sign_off_on_one_page(tmp_path: Path) -> None:
    run = _signed_run()
    for i in range(17):
        t = copy.deepcopy(run["tasks"][0])
        t["task"] = f"golden_{i:02d}"
        t["aa"] = None
        run["tasks"].append(t)
    assert len(run["tasks"]) == 20
    assert _printed_pages(tmp_path, run) == 1
