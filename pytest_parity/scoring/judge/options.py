"""The judge scorers' options, checked when the contract is read (pure: no HTTP, no numpy).

``judge-rubric``: ``rubric`` (text, or the path of a ``.md`` / ``.txt`` file relative to the
contract), ``scale`` (``1-5``, ``0-10``, any ``lo-hi`` of whole numbers, or ``pass/fail``).
``judge-pairwise``: ``criteria`` (text or file, as ``rubric``). Both: ``template`` (a prompt
template file replacing the shipped one), ``structured`` (``auto``, ``json_schema``,
``json_object`` or ``none``: how the judge is asked for JSON), ``recheck`` (the share of items
judged a second time, for the judge's consistency figure).

Files are read here, once: the options the scorer gets hold the texts themselves and the digest
of the prompt (template + rubric), which the reports show as provenance.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CRITERIA",
    "PLACEHOLDERS",
    "STRUCTURED",
    "TEMPLATES_DIR",
    "JudgeOptionError",
    "Scale",
    "judge_options",
    "parse_scale",
    "recorded_kind",
]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_FILES = {"judge-rubric": "rubric.md", "judge-pairwise": "pairwise.md"}
KEYS = {
    "judge-rubric": ("rubric", "scale", "template", "structured", "recheck"),
    "judge-pairwise": ("criteria", "template", "structured", "recheck"),
}
# placeholder -> required; anything else written {{like_this}} in a template is an error
PLACEHOLDERS: dict[str, dict[str, bool]] = {
    "judge-rubric": {
        "rubric": False,
        "prompt": False,
        "reference": False,
        "answer": True,
        "scale": False,
        "format": False,
    },
    "judge-pairwise": {
        "criteria": False,
        "prompt": False,
        "reference": False,
        "answer_a": True,
        "answer_b": True,
        "format": False,
    },
}
STRUCTURED = ("auto", "json_schema", "json_object", "none")
DEFAULT_CRITERIA = (
    "Which answer responds to the question better: correct, complete, faithful to what was asked,"
    " and clear."
)
FILE_SUFFIXES = (".md", ".txt", ".rubric")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SCALE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class JudgeOptionError(ValueError):
    """A bad judge option: the option's key, the problem and a hint (the contract's one line)."""

    def __init__(self, key: str, problem: str, hint: str | None = None) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
        self.hint = hint


class Scale:
    """A rubric scale: whole numbers ``lo..hi`` mapped linearly onto [0, 1], or pass/fail."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.binary = text == "pass/fail"
        if self.binary:
            self.lo, self.hi = 0, 1
        else:
            m = _SCALE.match(text)
            if m is None:
                raise ValueError(text)
            self.lo, self.hi = int(m.group(1)), int(m.group(2))
            if not self.lo < self.hi <= 100:
                raise ValueError(text)

    def to_unit(self, raw: float) -> float:
        return (raw - self.lo) / (self.hi - self.lo)

    def describe(self) -> str:
        if self.binary:
            return 'Decide "pass" when the answer meets the rubric, "fail" when it does not.'
        return f"Grade with a whole number from {self.lo} (worst) to {self.hi} (best)."


def parse_scale(value: Any) -> Scale:
    text = str(value).strip().lower().replace(" ", "") if value is not None else ""
    text = {"pass-fail": "pass/fail", "passfail": "pass/fail", "binary": "pass/fail"}.get(
        text, text
    )
    return Scale(text)


def _text_or_file(key: str, value: Any, base: Path) -> tuple[str, str]:
    """(text, where it came from): a one-line value ending in .md/.txt/.rubric is a file."""
    if not isinstance(value, str) or not value.strip():
        raise JudgeOptionError(
            key, f"expected text or a file path, got {value!r}", f"write {key}: rubrics/{key}.md"
        )
    one_line = "\n" not in value.strip()
    if one_line and value.strip().lower().endswith(FILE_SUFFIXES):
        path = (base / value.strip()).resolve()
        if not path.is_file():
            raise JudgeOptionError(
                key, f"file not found: {path}", "paths are relative to the contract file"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise JudgeOptionError(key, f"cannot read {path}: {exc}") from None
        if not text.strip():
            raise JudgeOptionError(key, f"{path} is empty", f"write the {key} in it")
        return text.strip(), str(path)
    return value.strip(), "inline"


def check_template(scorer: str, text: str, where: str) -> None:
    wanted = PLACEHOLDERS[scorer]
    found = set(_PLACEHOLDER.findall(text))
    unknown = sorted(found - set(wanted))
    if unknown:
        raise JudgeOptionError(
            "template",
            f"{where}: unknown placeholder {{{{{unknown[0]}}}}}",
            f"{scorer} templates know: " + ", ".join(f"{{{{{k}}}}}" for k in wanted),
        )
    missing = [k for k, required in wanted.items() if required and k not in found]
    if missing:
        raise JudgeOptionError(
            "template",
            f"{where}: does not contain {{{{{missing[0]}}}}}",
            "the judge must see the answer(s) it judges",
        )


def recorded_kind(path: Path) -> str | None:
    """The endpoint kind a recording was made from (its first header line), when readable."""
    import json

    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    head = json.loads(line)
                    kind = head.get("kind") if isinstance(head, dict) else None
                    return kind if isinstance(kind, str) else None
    except (OSError, ValueError):
        return None
    return None


def judge_options(
    scorer: str, options: Mapping[str, Any], base: Path, judge_kind: str
) -> dict[str, Any]:
    """The scorer's options checked and resolved (file texts read, defaults filled in)."""
    allowed = KEYS[scorer]
    for key in options:
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            raise JudgeOptionError(
                str(key),
                f"unknown option for scorer {scorer}",
                f"did you mean {close[0]!r}?" if close else f"{scorer} takes: {', '.join(allowed)}",
            )
    out: dict[str, Any] = {}
    if scorer == "judge-rubric":
        if options.get("rubric") is None:
            raise JudgeOptionError(
                "rubric",
                "required but missing",
                "write rubric: <what a good answer does>, or the path of a .md file",
            )
        out["rubric"], out["rubric_source"] = _text_or_file("rubric", options["rubric"], base)
        raw_scale = options.get("scale", "1-5")
        try:
            scale = parse_scale(raw_scale)
        except ValueError:
            raise JudgeOptionError(
                "scale",
                f"expected 1-5, 0-10 (any lo-hi of whole numbers) or pass/fail, got {raw_scale!r}",
                "write scale: 1-5",
            ) from None
        out["scale"] = scale.text
        body = out["rubric"]
    else:
        raw = options.get("criteria", DEFAULT_CRITERIA)
        out["criteria"], out["criteria_source"] = _text_or_file("criteria", raw, base)
        body = out["criteria"]
    if options.get("template") is not None:
        tpl = options["template"]
        if not isinstance(tpl, str) or not tpl.strip():
            raise JudgeOptionError("template", f"expected a file path, got {tpl!r}")
        path = (base / tpl.strip()).resolve()
        if not path.is_file():
            raise JudgeOptionError(
                "template",
                f"file not found: {path}",
                f"copy {TEMPLATES_DIR / TEMPLATE_FILES[scorer]} and edit it; paths are relative"
                " to the contract",
            )
        out["template"] = path.read_text(encoding="utf-8")
        out["template_source"] = str(path)
    else:
        path = TEMPLATES_DIR / TEMPLATE_FILES[scorer]
        out["template"] = path.read_text(encoding="utf-8")
        out["template_source"] = f"builtin:{TEMPLATE_FILES[scorer]}"
    check_template(scorer, out["template"], out["template_source"])
    structured = options.get("structured", "auto")
    if structured not in STRUCTURED:
        raise JudgeOptionError(
            "structured",
            f"expected one of {', '.join(STRUCTURED)}, got {structured!r}",
            "auto picks what the judge's kind supports",
        )
    if structured == "auto":
        structured = {"llama-cpp": "json_object", "anthropic": "none", "replay": "none"}.get(
            judge_kind, "json_schema"
        )
    elif structured != "none" and judge_kind == "anthropic":
        raise JudgeOptionError(
            "structured",
            "the anthropic kind has no response_format",
            "write structured: none (the verdict is parsed from the text)",
        )
    out["structured"] = structured
    recheck = options.get("recheck", 0.1)
    if isinstance(recheck, bool) or not isinstance(recheck, int | float) or not 0 <= recheck <= 1:
        raise JudgeOptionError(
            "recheck",
            f"expected a share in [0, 1], got {recheck!r}",
            "e.g. recheck: 0.1 judges one item in ten twice (0 turns it off)",
        )
    out["recheck"] = float(recheck)
    digest = hashlib.sha256()
    for part in (scorer, out["template"], body, out.get("scale", "")):
        digest.update(part.encode("utf-8") + b"\0")
    out["prompt_digest"] = digest.hexdigest()
    return out
