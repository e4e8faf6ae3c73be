"""The contract's rules: parsed YAML in, a validated :class:`~pytest_parity.contract.Contract` out.

Each section (endpoints, defaults, tasks) is checked field by field; the first problem raises a
:class:`~pytest_parity.contract.ContractError` naming the field path, the problem and a fix.
Unknown keys get a did-you-mean. Separate from :mod:`pytest_parity.contract`, which holds the
frozen spec itself, so that reading a contract's types never costs its validation code.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_parity.contract.spec import (
    APIS,
    CONTRACT_VERSION,
    DIRECTION_POLICIES,
    INCONCLUSIVE_POLICIES,
    NAME_RE,
    SOURCES,
    Contract,
    ContractError,
    Defaults,
    EndpointSpec,
    TaskSpec,
    _did_you_mean,
    _frozen,
)
from pytest_parity.endpoints.kinds import KINDS

# ----------------------------------------------------------------------------------------------
# validation helpers


class _V:
    """Validation context for one contract file."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, problem: str, hint: str | None = None) -> ContractError:
        return ContractError(self.file, where, problem, hint)

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(
                where, f"expected a mapping, got {_show(value)}", "write key: value pairs"
            )
        for k in value:
            if not isinstance(k, str):
                raise self.fail(where, f"keys must be strings, got {_show(k)}")
        return value

    def keys(self, value: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for k in value:
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1, cutoff=0.6)
                hint = (
                    f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(allowed)
                )
                raise self.fail(_join(where, k), "unknown key", hint)

    def required(self, value: Mapping[str, Any], where: str, key: str, hint: str) -> Any:
        if key not in value or value[key] is None:
            raise self.fail(_join(where, key), "required but missing", hint)
        return value[key]

    def string(self, value: Any, where: str, hint: str | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {_show(value)}", hint)
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            mean = _did_you_mean(str(value), choices)
            raise self.fail(
                where,
                f"expected one of {', '.join(choices)}, got {_show(value)}{mean}",
                f"write one of: {', '.join(choices)}",
            )
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(
                where, f"expected true or false, got {_show(value)}", "write true or false"
            )
        return value

    def number(
        self,
        value: Any,
        where: str,
        lo: float,
        hi: float,
        *,
        lo_open: bool = True,
        hi_open: bool = True,
        hint: str | None = None,
    ) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            x = float(value)
            ok = x == x and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
        if not ok:
            rng = f"{'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
            if hint is None and isinstance(value, str) and value.strip().endswith("%"):
                try:
                    hint = f"write {float(value.strip()[:-1]) / 100:g}"
                except ValueError:
                    hint = None
            raise self.fail(where, f"expected a number in {rng}, got {_show(value)}", hint)
        return float(value)

    def integer(self, value: Any, where: str, lo: int, hint: str | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise self.fail(where, f"expected a whole number >= {lo}, got {_show(value)}", hint)
        return value


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) < 60 else repr(value[:57] + "...")
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _fmt(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:g}"


# ----------------------------------------------------------------------------------------------
# sections

ENDPOINT_KEYS = (
    "kind",
    "base_url",
    "model",
    "api",
    "api_key_env",
    "params",
    "timeout",
    "max_concurrency",
    "max_retries",
    "headers",
    "recording",
)
DEFAULT_KEYS = (*Defaults.__dataclass_fields__, "confidence")
TASK_KEYS = (
    "name",
    "source",
    "path",
    "scorer",
    "scorer_options",
    "tolerance",
    "safety_critical",
    "alpha",
    "confidence",
    "min_items",
    "inconclusive",
    "max_error_rate",
    "error_direction",
    "failure_min_count",
    "params",
    "system",
    "template",
    "limit",
    "cluster_key",
    "repeats",
    "categories",
    "lm_eval",
    "long_context",
    "tool_use",
)
# task key -> the source that reads it (sources beyond golden and lm-eval validate their own)
SOURCE_OPTION_KEYS = {"long_context": "long-context", "tool_use": "tool-use"}
TOP_KEYS = ("version", "baseline", "candidate", "defaults", "tasks", "description")
VENDOR_HOSTS = {"openai": "://api.openai.com", "anthropic": "://api.anthropic.com"}
SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(v: _V, value: Any, where: str) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in endpoint strings (URLs that CI assigns at run time)."""
    import os

    if isinstance(value, Mapping):
        return {k: _interpolate(v, x, _join(where, k)) for k, x in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, x, _join(where, i)) for i, x in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        got = os.environ.get(m.group(1))
        if got is None:
            if m.group(2) is None:
                raise v.fail(
                    where,
                    f"environment variable {m.group(1)} is not set",
                    f"export {m.group(1)}, or write ${{{m.group(1)}:-default}}",
                )
            return m.group(2)
        return got

    return _ENV_REF.sub(sub, value)


def _endpoint(v: _V, raw: Any, role: str, base: Path, defaults: Defaults) -> EndpointSpec:
    m = v.mapping(raw, role)
    m = {k: x if k == "api_key_env" else _interpolate(v, x, _join(role, k)) for k, x in m.items()}
    v.keys(m, role, ENDPOINT_KEYS)
    kind = v.choice(v.required(m, role, "kind", "write kind: openai"), f"{role}.kind", tuple(KINDS))
    info = KINDS[kind]
    if info.needs_base_url:
        base_url = v.string(
            v.required(m, role, "base_url", 'write base_url: "http://host:port/v1"'),
            f"{role}.base_url",
        )
        if not re.match(r"^https?://[^\s/]+", base_url):
            raise v.fail(
                f"{role}.base_url",
                f"expected an http(s) URL, got {_show(base_url)}",
                'write e.g. "http://127.0.0.1:8000/v1"',
            )
        if re.match(r"^https?://[^/@\s]+:[^/@\s]+@", base_url):
            raise v.fail(
                f"{role}.base_url",
                "credentials in the URL",
                "put the key in an environment variable and name it in api_key_env",
            )
    else:
        base_url = str(m.get("base_url") or "")
    model = v.string(
        v.required(m, role, "model", "write model: <served model name>"), f"{role}.model"
    )
    api = v.choice(m.get("api", "chat"), f"{role}.api", APIS)
    if kind == "anthropic" and api != "chat":
        raise v.fail(
            f"{role}.api", "the anthropic kind only has the Messages API", "write api: chat"
        )
    # The vendor's key variable is only a default for the vendor's own API: a contract pointing
    # kind openai at a self-hosted server must never send the user's OpenAI key there.
    vendor = VENDOR_HOSTS.get(kind)
    default_env = info.default_api_key_env if vendor and vendor in base_url else None
    api_key_env = m.get("api_key_env", default_env)
    if api_key_env is not None:
        api_key_env = v.string(api_key_env, f"{role}.api_key_env")
        if not ENV_NAME_RE.match(api_key_env):
            raise v.fail(
                f"{role}.api_key_env",
                "expected the NAME of an environment variable, not a key",
                "write e.g. api_key_env: OPENAI_API_KEY and export the key in that variable",
            )
    params_raw = dict(v.mapping(m.get("params", {}) or {}, f"{role}.params"))
    for k in params_raw:
        if k not in info.params:
            close = difflib.get_close_matches(k, sorted(info.params), n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"{kind} servers accept: {', '.join(sorted(info.params))}"
            )
            raise v.fail(f"{role}.params.{k}", f"not a parameter {kind} endpoints accept", hint)
    _check_sampling(v, params_raw, f"{role}.params")
    params: dict[str, Any] = {"temperature": 0.0}
    if kind != "anthropic":
        params["seed"] = defaults.seed
    params["max_tokens"] = 512
    if kind == "llama-cpp":
        # llama.cpp applies repeat_penalty 1.1 even at temperature 0: greedy means 1.0.
        params["repeat_penalty"] = 1.0
    params.update(params_raw)
    timeout = v.number(m.get("timeout", 120.0), f"{role}.timeout", 0, 86400)
    conc = v.integer(m.get("max_concurrency", 8), f"{role}.max_concurrency", 1)
    retries = v.integer(m.get("max_retries", 4), f"{role}.max_retries", 0)
    headers = dict(v.mapping(m.get("headers", {}) or {}, f"{role}.headers"))
    for hk, hv in headers.items():
        if hk.lower() in SECRET_HEADERS:
            raise v.fail(
                f"{role}.headers.{hk}",
                "secrets do not belong in the contract",
                "name the environment variable that holds the key in api_key_env",
            )
        v.string(hv, f"{role}.headers.{hk}")
    recording: Path | None = None
    if kind == "replay":
        rec = v.string(
            v.required(m, role, "recording", "write recording: <file made by --parity-record>"),
            f"{role}.recording",
        )
        recording = (base / rec).resolve()
        if not recording.is_file():
            raise v.fail(
                f"{role}.recording",
                f"file not found: {recording}",
                "record one with --parity-record=PATH, or fix the path (relative to the contract)",
            )
    elif "recording" in m:
        raise v.fail(
            f"{role}.recording", "only a replay endpoint reads a recording", "write kind: replay"
        )
    return EndpointSpec(
        role=role,
        kind=kind,
        base_url=base_url.rstrip("/"),
        model=model,
        api=api,
        api_key_env=api_key_env,
        params=_frozen(params),
        timeout=timeout,
        max_concurrency=conc,
        max_retries=retries,
        headers=_frozen(headers),
        recording=recording,
    )


def _check_sampling(v: _V, params: Mapping[str, Any], where: str) -> None:
    if "temperature" in params:
        v.number(params["temperature"], f"{where}.temperature", 0, 2, lo_open=False, hi_open=False)
    if "top_p" in params:
        v.number(params["top_p"], f"{where}.top_p", 0, 1, hi_open=False)
    for key in ("max_tokens", "max_completion_tokens"):
        if key in params:
            v.integer(
                params[key],
                f"{where}.{key}",
                1,
                "a positive number of tokens (0 means 'until the context is full' on some servers)",
            )
    if "seed" in params and params["seed"] is not None:
        v.integer(params["seed"], f"{where}.seed", 0)


def _defaults(v: _V, raw: Any) -> Defaults:
    if raw is None:
        return Defaults()
    m = v.mapping(raw, "defaults")
    v.keys(m, "defaults", DEFAULT_KEYS)
    d = Defaults()
    return Defaults(
        tolerance=_tolerance(v, m.get("tolerance", d.tolerance), "defaults.tolerance"),
        safety_tolerance=_tolerance(
            v, m.get("safety_tolerance", d.safety_tolerance), "defaults.safety_tolerance"
        ),
        alpha=_alpha(v, m, "defaults", d.alpha),
        seed=v.integer(m.get("seed", d.seed), "defaults.seed", 0),
        min_items=v.integer(m.get("min_items", d.min_items), "defaults.min_items", 1),
        inconclusive=v.choice(
            m.get("inconclusive", d.inconclusive), "defaults.inconclusive", INCONCLUSIVE_POLICIES
        ),
        max_error_rate=v.number(
            m.get("max_error_rate", d.max_error_rate),
            "defaults.max_error_rate",
            0,
            1,
            lo_open=False,
            hint="the share of items whose requests may fail before the task errors, e.g. 0.02",
        ),
        error_direction=v.choice(
            m.get("error_direction", d.error_direction),
            "defaults.error_direction",
            DIRECTION_POLICIES,
        ),
        failure_min_count=v.integer(
            m.get("failure_min_count", d.failure_min_count), "defaults.failure_min_count", 1
        ),
        disagreements=v.integer(
            m.get("disagreements", d.disagreements), "defaults.disagreements", 0
        ),
    )


def _alpha(v: _V, m: Mapping[str, Any], where: str, default: float) -> float:
    """alpha, or the confidence level of the two-sided interval the verdict reads (1 - 2 alpha)."""
    if "alpha" in m and "confidence" in m:
        raise v.fail(
            _join(where, "confidence"),
            "give alpha or confidence, not both",
            "confidence 0.90 is alpha 0.05 (the verdict reads the two-sided 1 - 2 alpha interval)",
        )
    if "confidence" in m:
        conf = v.number(m["confidence"], _join(where, "confidence"), 0, 1, hint="e.g. 0.90")
        return (1.0 - conf) / 2.0
    return v.number(m.get("alpha", default), _join(where, "alpha"), 0, 0.5, hint="e.g. 0.05")


def _tolerance(v: _V, value: Any, where: str) -> float:
    hint = None
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value < 100:
        hint = f"tolerances are absolute points on a 0-1 metric: write {value / 100:g}"
    return v.number(value, where, 0, 1, hint=hint)


def _task(v: _V, raw: Any, i: int, base: Path, d: Defaults) -> TaskSpec:
    where = f"tasks[{i}]"
    m = v.mapping(raw, where)
    v.keys(m, where, TASK_KEYS)
    name = v.string(v.required(m, where, "name", "write name: <task name>"), f"{where}.name")
    if not NAME_RE.match(name):
        raise v.fail(
            f"{where}.name",
            f"{name!r} is not a usable test id",
            "use letters, digits and _ . : - only",
        )
    from pytest_parity import registry

    source = v.choice(
        m.get("source", "golden"),
        f"{where}.source",
        tuple(dict.fromkeys((*SOURCES, *registry.sources.names()))),
    )
    src = None if source in SOURCES else registry.sources.get(source)
    path: Path | None = None
    if source == "golden" or (src is not None and src.needs_path):
        rel = v.string(
            v.required(
                m, where, "path", "write path: <golden set JSONL, relative to the contract>"
            ),
            f"{where}.path",
        )
        path = (base / rel).resolve()
        if not path.is_file():
            raise v.fail(
                f"{where}.path",
                f"file not found: {path}",
                "paths are relative to the contract file",
            )
    elif "path" in m:
        path = (base / v.string(m["path"], f"{where}.path")).resolve()
    if src is not None and getattr(src, "scores_itself", False) and "scorer" in m:
        raise v.fail(
            f"{where}.scorer",
            f"the {source} source scores its own items",
            "remove scorer (see the README's section on the source)",
        )
    scorer_raw = m.get(
        "scorer",
        src.default_scorer if src is not None else "exact" if source == "golden" else "lm-eval",
    )
    scorer_options: dict[str, Any] = dict(
        v.mapping(m.get("scorer_options", {}) or {}, f"{where}.scorer_options")
    )
    if isinstance(scorer_raw, Mapping):
        sm = dict(scorer_raw)
        scorer = v.string(
            sm.pop("name", None), f"{where}.scorer.name", "write scorer: {name: regex, ...}"
        )
        scorer_options.update(sm)
    else:
        scorer = v.string(scorer_raw, f"{where}.scorer")
    if source == "golden":
        _check_scorer(v, scorer, scorer_options, f"{where}.scorer")
    safety = v.boolean(m.get("safety_critical", False), f"{where}.safety_critical")
    tol_default = d.safety_tolerance if safety else d.tolerance
    tolerance = _tolerance(v, m.get("tolerance", tol_default), f"{where}.tolerance")
    inconclusive = v.choice(
        m.get("inconclusive", d.inconclusive), f"{where}.inconclusive", INCONCLUSIVE_POLICIES
    )
    if safety and inconclusive != "fail":
        raise v.fail(
            f"{where}.inconclusive",
            "a safety-critical task always fails when inconclusive",
            "remove inconclusive, or set safety_critical: false",
        )
    params = dict(v.mapping(m.get("params", {}) or {}, f"{where}.params"))
    _check_sampling(v, params, f"{where}.params")
    template = m.get("template")
    if template is not None:
        template = v.string(template, f"{where}.template")
        if "{prompt}" not in template:
            raise v.fail(
                f"{where}.template", "does not contain {prompt}", "e.g. 'Q: {prompt}\\nA:'"
            )
    categories = dict(v.mapping(m.get("categories", {}) or {}, f"{where}.categories"))
    for cname, pattern in categories.items():
        v.string(pattern, f"{where}.categories.{cname}", "a regular expression")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise v.fail(
                f"{where}.categories.{cname}", f"not a valid regular expression: {exc}"
            ) from None
    lm_eval = dict(v.mapping(m.get("lm_eval", {}) or {}, f"{where}.lm_eval"))
    if source == "lm-eval":
        if "task" not in lm_eval:
            raise v.fail(
                f"{where}.lm_eval.task", "required but missing", "write lm_eval: {task: gsm8k}"
            )
        from pytest_parity.sources.lmeval.options import normalize_lm_eval_options

        # Paths inside lm_eval (include_path, data_files, tokenizer) are relative to the contract.
        lm_eval = normalize_lm_eval_options(lm_eval, f"{where}.lm_eval", v.file, base)
    elif lm_eval:
        raise v.fail(
            f"{where}.lm_eval", "only an lm-eval task reads these", "write source: lm-eval"
        )
    options: Mapping[str, Any] = MappingProxyType({})
    for key, reader in SOURCE_OPTION_KEYS.items():
        if key in m and reader != source:
            raise v.fail(f"{where}.{key}", f"only a {reader} task reads these",
                         f"write source: {reader}")  # fmt: skip
    if src is not None:
        key = src.options_key
        raw_opts = {} if key is None else v.mapping(m.get(key, {}) or {}, f"{where}.{key}")
        options = src.options(dict(raw_opts), f"{where}.{key}", v, base)
    limit = m.get("limit")
    return TaskSpec(
        name=name,
        source=source,
        path=path,
        scorer=scorer,
        scorer_options=_frozen(scorer_options),
        tolerance=tolerance,
        safety_critical=safety,
        alpha=_alpha(v, m, where, d.alpha),
        min_items=v.integer(m.get("min_items", d.min_items), f"{where}.min_items", 1),
        inconclusive=inconclusive,
        max_error_rate=v.number(
            m.get("max_error_rate", d.max_error_rate),
            f"{where}.max_error_rate",
            0,
            1,
            lo_open=False,
        ),
        error_direction=v.choice(
            m.get("error_direction", d.error_direction),
            f"{where}.error_direction",
            DIRECTION_POLICIES,
        ),
        failure_min_count=1
        if safety
        else v.integer(
            m.get("failure_min_count", d.failure_min_count), f"{where}.failure_min_count", 1
        ),
        params=_frozen(params),
        system=None if m.get("system") is None else v.string(m["system"], f"{where}.system"),
        template=template,
        limit=None if limit is None else v.integer(limit, f"{where}.limit", 1),
        cluster_key=None
        if m.get("cluster_key") is None
        else v.string(m["cluster_key"], f"{where}.cluster_key"),
        repeats=v.integer(m.get("repeats", 1), f"{where}.repeats", 1),
        categories=_frozen(categories),
        lm_eval=_frozen(lm_eval),
        source_options=options,
    )


def _check_scorer(v: _V, scorer: str, options: Mapping[str, Any], where: str) -> None:
    from pytest_parity.scoring.builtin import SCORERS, check_options

    if ":" in scorer:
        return  # custom scorer by import path: resolved (and checked) when the task runs
    if scorer not in SCORERS:
        raise v.fail(
            where,
            f"unknown scorer {scorer!r}{_did_you_mean(scorer, tuple(SCORERS))}",
            f"built-in scorers: {', '.join(SCORERS)}; or 'package.module:function'",
        )
    problem = check_options(scorer, options)
    if problem:
        raise v.fail(where.rsplit(".", 1)[0] + ".scorer_options", problem[0], problem[1])


def build_contract(raw: Any, path: Path, text: str | None = None) -> Contract:
    """Validate parsed YAML into a :class:`Contract`; every problem is a ContractError."""
    file = str(path)
    v = _V(file)
    if raw is None:
        raise ContractError(
            file, "", "the contract is empty", "see the README's contract reference"
        )
    m = v.mapping(raw, "")
    v.keys(m, "", TOP_KEYS)
    version = m.get("version", CONTRACT_VERSION)
    if version != CONTRACT_VERSION:
        raise v.fail("version", f"unsupported contract version {version!r}", "write version: 1")
    base = path.resolve().parent
    defaults = _defaults(v, m.get("defaults"))
    baseline = _endpoint(
        v,
        v.required(m, "", "baseline", "describe the old stack under baseline:"),
        "baseline",
        base,
        defaults,
    )
    candidate = _endpoint(
        v,
        v.required(m, "", "candidate", "describe the new stack under candidate:"),
        "candidate",
        base,
        defaults,
    )
    raw_tasks = v.required(m, "", "tasks", "list at least one task under tasks:")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise v.fail(
            "tasks", f"expected a non-empty list, got {_show(raw_tasks)}", "write tasks: [...]"
        )
    tasks: list[TaskSpec] = []
    seen: dict[str, int] = {}
    for i, rt in enumerate(raw_tasks):
        t = _task(v, rt, i, base, defaults)
        if t.name in seen:
            raise v.fail(
                f"tasks[{i}].name",
                f"duplicate task name {t.name!r} (also tasks[{seen[t.name]}])",
                "task names must be unique",
            )
        seen[t.name] = i
        tasks.append(t)
    if text is None:
        text = json.dumps(raw, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Contract(
        path=path.resolve(),
        version=CONTRACT_VERSION,
        baseline=baseline,
        candidate=candidate,
        defaults=defaults,
        tasks=tuple(tasks),
        digest=digest,
    )
