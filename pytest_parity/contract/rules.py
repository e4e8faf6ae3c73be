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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_parity import registry
from pytest_parity.contract.spec import (
    APIS,
    CONTRACT_VERSION,
    DIRECTION_POLICIES,
    INCONCLUSIVE_POLICIES,
    NAME_RE,
    Contract,
    ContractError,
    Defaults,
    EarlyStopSpec,
    EndpointSpec,
    SliceBy,
    TaskSpec,
    _did_you_mean,
    _frozen,
)
from pytest_parity.secrets import FrozenHeaders

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

    def optional_mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        """A mapping that may be left out or empty (null); 0, "" or a list are still errors."""
        return {} if value is None else self.mapping(value, where)

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

    def integer(
        self, value: Any, where: str, lo: int, hint: str | None = None, *, hi: int | None = None
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            expected = f">= {lo}" if hi is None else f"in {lo}-{hi:,}"
            raise self.fail(where, f"expected a whole number {expected}, got {_show(value)}", hint)
        if hi is not None and value > hi:
            raise self.fail(
                where, f"expected a whole number in {lo}-{hi:,}, got {_show_int(value)}", hint
            )
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


def _show_int(value: int) -> str:
    text = str(value)
    return text if len(text) <= 20 else f"{text[:6]}...({len(text)} digits)"


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
    "max_response_bytes",
)
DEFAULT_KEYS = (*Defaults.__dataclass_fields__, "confidence")
# Failed requests are not missing at random (a stack that times out on long prompts fails exactly
# the hard items): past this share the paired verdict would describe another golden set.
MAX_ERROR_RATE = 0.2
# Counts of items beyond any golden set (the planning functions stop at the same bound), and the
# largest answer an endpoint may be allowed (it is held in memory): absurd values are errors.
MAX_ITEMS = 100_000_000
MAX_RESPONSE_BYTES = 1 << 32
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
    "checks",
    "bucket_by",
    "slice_by",
    "failure_ratio",
    "score_range",
    "judge",
    "early_stop",
)
# shadow: the tee proxy's block (pytest_parity/shadow/config.py validates it; the gate ignores it)
TOP_KEYS = (
    "version", "baseline", "candidate", "defaults", "tasks", "description", "shadow", "judge",
    "monitor",
)  # fmt: skip
SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
# Bounds on what a contract may ask: beyond them a value is a typo, never a setting.
MAX_CONCURRENCY = 4096
MAX_RETRIES = 20
MAX_REPEATS = 1000
MAX_SEED = 2**32 - 1  # llama.cpp reads a 32-bit seed; every other server accepts these
SEED_HINT = f"a seed in 0-{MAX_SEED:,} (llama.cpp reads 32 bits)"
MAX_TOKENS = 10_000_000


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

    out = _ENV_REF.sub(sub, value)
    if "${" in _ENV_REF.sub("", value):
        # "${" that no ${NAME} or ${NAME:-default} consumed: a typo, never a literal
        raise v.fail(
            where,
            f"{value!r} has a '${{' that is not a ${{NAME}} reference",
            "write ${NAME} or ${NAME:-default} (NAME: letters, digits, underscores)",
        )
    return out


def _endpoint(v: _V, raw: Any, role: str, base: Path, defaults: Defaults) -> EndpointSpec:
    m = v.mapping(raw, role)
    v.keys(m, role, ENDPOINT_KEYS)
    m = {k: x if k == "api_key_env" else _interpolate(v, x, _join(role, k)) for k, x in m.items()}
    kind = v.choice(
        v.required(m, role, "kind", "write kind: openai"), f"{role}.kind", registry.kinds.names()
    )
    info = registry.kinds.get(kind)
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
        if _CONTROL_OR_SPACE.search(base_url):
            raise v.fail(
                f"{role}.base_url",
                f"contains a space, newline or control character: {base_url!r}",
                "write the URL on one line (a variable read from a file may end in a newline)",
            )
        try:
            urlsplit(base_url).port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            raise v.fail(
                f"{role}.base_url",
                f"the port is not a number in 0-65535: {base_url!r}",
                'write e.g. "http://127.0.0.1:8000/v1"',
            ) from None
        if re.match(r"^https?://[^/@\s]+:[^/@\s]+@", base_url):
            raise v.fail(
                f"{role}.base_url",
                "credentials in the URL",
                "put the key in an environment variable and name it in api_key_env",
            )
    else:
        base_url = str(m.get("base_url") or "")
    if kind == "captured":
        # The production answers carry no served name of their own: a label for the reports.
        m.setdefault("model", "production")
        if role != "baseline":
            raise v.fail(
                f"{role}.kind",
                "only the baseline can be the captured production answer",
                "point the candidate at the new stack",
            )
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
    api_key_env = m.get("api_key_env", info.default_key_env(base_url))
    if api_key_env is not None:
        api_key_env = v.string(api_key_env, f"{role}.api_key_env")
        if not ENV_NAME_RE.match(api_key_env):
            raise v.fail(
                f"{role}.api_key_env",
                "expected the NAME of an environment variable, not a key",
                "write e.g. api_key_env: OPENAI_API_KEY and export the key in that variable",
            )
    params_raw = dict(v.optional_mapping(m.get("params"), f"{role}.params"))
    _check_params(v, params_raw, f"{role}.params", kind)
    params: dict[str, Any] = {"temperature": 0.0}
    if kind != "anthropic":
        params["seed"] = defaults.seed
    params["max_tokens"] = 512
    if kind == "llama-cpp":
        # llama.cpp applies repeat_penalty 1.1 even at temperature 0: greedy means 1.0.
        params["repeat_penalty"] = 1.0
    params.update(params_raw)
    timeout = v.number(m.get("timeout", 120.0), f"{role}.timeout", 0, 86400)
    conc = v.integer(
        m.get("max_concurrency", 8),
        f"{role}.max_concurrency",
        1,
        hi=MAX_CONCURRENCY,
        hint=f"requests in flight to this endpoint, 1 to {MAX_CONCURRENCY}",
    )
    retries = v.integer(
        m.get("max_retries", 4),
        f"{role}.max_retries",
        0,
        hi=MAX_RETRIES,
        hint=f"0 to {MAX_RETRIES} (each retry waits up to 20 s)",
    )
    cap = v.integer(
        m.get("max_response_bytes", 16 << 20),
        f"{role}.max_response_bytes",
        1024,
        hi=MAX_RESPONSE_BYTES,
    )
    headers = dict(v.optional_mapping(m.get("headers"), f"{role}.headers"))
    for hk, hv in headers.items():
        if hk.lower() in SECRET_HEADERS:
            raise v.fail(
                f"{role}.headers.{hk}",
                "secrets do not belong in the contract",
                "name the environment variable that holds the key in api_key_env",
            )
        if not _HEADER_NAME.match(hk):
            raise v.fail(
                f"{role}.headers.{hk}",
                "not a usable HTTP header name",
                "letters, digits and - only, e.g. X-Request-Source",
            )
        v.string(hv, f"{role}.headers.{hk}")
        if not _HEADER_VALUE.match(hv):
            raise v.fail(
                f"{role}.headers.{hk}",
                f"an HTTP header value must be printable ASCII on one line, got {_show(hv)}",
                "drop the newline and non-ASCII characters (percent-encode them if needed)",
            )
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
        headers=FrozenHeaders(headers),
        recording=recording,
        max_response_bytes=cap,
    )


def _check_params(v: _V, params: Mapping[str, Any], where: str, kind: str) -> None:
    """Sampling parameters: each one the kind's server accepts, of the type and range it reads."""
    info = registry.kinds.get(kind)
    for k in params:
        if k not in info.params:
            close = difflib.get_close_matches(k, sorted(info.params), n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"{kind} servers accept: {', '.join(sorted(info.params))}"
            )
            raise v.fail(f"{where}.{k}", f"not a parameter {kind} endpoints accept", hint)
    _check_sampling(v, params, where)


_BOOL_PARAMS = frozenset(
    {
        "ignore_eos",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "include_stop_str_in_output",
        "add_generation_prompt",
        "continue_final_message",
        "parallel_tool_calls",
        "no_stop_trim",
        "separate_reasoning",
        "add_special_tokens",
        "echo",
    }
)
_MAPPING_PARAMS = frozenset(
    {"response_format", "logit_bias", "chat_template_kwargs", "metadata", "thinking"}
)
# name -> (lowest, highest, open below); numbers
_NUMBER_PARAMS: dict[str, tuple[float, float, bool]] = {
    "presence_penalty": (-2.0, 2.0, False),
    "frequency_penalty": (-2.0, 2.0, False),
    "repetition_penalty": (0.0, 10.0, True),
    "repeat_penalty": (0.0, 10.0, False),
    "min_p": (0.0, 1.0, False),
    "typical_p": (0.0, 1.0, False),
    "length_penalty": (-10.0, 10.0, False),
}
# name -> (lowest, highest); whole numbers
_INT_PARAMS: dict[str, tuple[int, int]] = {
    "top_k": (-1, 1_000_000),
    "top_logprobs": (0, 20),
    "n": (1, 128),
    "min_tokens": (0, MAX_TOKENS),
    "n_probs": (0, 100),
    "mirostat_mode": (0, 2),
    "truncate_prompt_tokens": (1, MAX_TOKENS),
    "prompt_logprobs": (0, 20),
}


def _check_sampling(v: _V, params: Mapping[str, Any], where: str) -> None:
    """Type and range of every known parameter: a value the server would choke on at run time
    (``logprobs: many``, ``stop: 5``, ``tools: [1, 2]``) is a contract error now."""
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
                hi=MAX_TOKENS,
            )
    if "seed" in params and params["seed"] is not None:
        v.integer(params["seed"], f"{where}.seed", 0, SEED_HINT, hi=MAX_SEED)
    for key, value in params.items():
        at = f"{where}.{key}"
        if key in _BOOL_PARAMS:
            v.boolean(value, at)
        elif key in _MAPPING_PARAMS:
            v.mapping(value, at)
        elif key in _NUMBER_PARAMS:
            lo, hi, lo_open = _NUMBER_PARAMS[key]
            v.number(value, at, lo, hi, lo_open=lo_open, hi_open=False)
        elif key in _INT_PARAMS:
            v.integer(value, at, _INT_PARAMS[key][0], hi=_INT_PARAMS[key][1])
        elif key == "logprobs" and not isinstance(value, bool):
            v.integer(
                value,
                at,
                0,
                "true or false on the chat API; the number of top tokens (0-20) on completions",
                hi=20,
            )
        elif key in ("stop", "stop_sequences", "bad_words"):
            items = [value] if isinstance(value, str) and key == "stop" else value
            if not isinstance(items, list) or not items or len(items) > 64:
                raise v.fail(
                    at,
                    f"expected a string or a list of strings, got {_show(value)}",
                    'write e.g. stop: ["\\n\\n", "Q:"]',
                )
            for j, x in enumerate(items):
                if not isinstance(x, str) or not x:
                    raise v.fail(
                        _join(at, j), f"expected a non-empty string, got {_show(x)}", "quote it"
                    )
        elif key == "stop_token_ids":
            if not isinstance(value, list):
                raise v.fail(at, f"expected a list of token ids, got {_show(value)}")
            for j, x in enumerate(value):
                v.integer(x, _join(at, j), 0)
        elif key == "tools":
            _check_tools(v, value, at)
        elif key == "tool_choice" and not isinstance(value, str):
            v.mapping(value, at)


def _check_tools(v: _V, value: Any, where: str) -> None:
    """Tools in the OpenAI shape ({type: function, function: {name, parameters}}) or the
    Anthropic one ({name, input_schema}): each a mapping with a name."""
    hint = "write tools: [{type: function, function: {name: ..., parameters: {...}}}]"
    if not isinstance(value, list) or not value:
        raise v.fail(
            where, f"expected a non-empty list of tool definitions, got {_show(value)}", hint
        )
    for j, tool in enumerate(value):
        at = _join(where, j)
        if not isinstance(tool, Mapping):
            raise v.fail(at, f"expected a tool definition (a mapping), got {_show(tool)}", hint)
        fn = tool.get("function", tool)
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise v.fail(_join(at, "function"), "a tool needs a function with a name", hint)
        schema = fn.get("parameters", fn.get("input_schema"))
        if schema is not None and not isinstance(schema, Mapping):
            raise v.fail(
                _join(at, "function.parameters"),
                f"expected a JSON schema (a mapping), got {_show(schema)}",
                hint,
            )


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
        seed=v.integer(m.get("seed", d.seed), "defaults.seed", 0, SEED_HINT, hi=MAX_SEED),
        min_items=v.integer(m.get("min_items", d.min_items), "defaults.min_items", 1, hi=MAX_ITEMS),
        inconclusive=v.choice(
            m.get("inconclusive", d.inconclusive), "defaults.inconclusive", INCONCLUSIVE_POLICIES
        ),
        max_error_rate=v.number(
            m.get("max_error_rate", d.max_error_rate),
            "defaults.max_error_rate",
            0,
            MAX_ERROR_RATE,
            lo_open=False,
            hi_open=False,
            hint="the share of items whose requests may fail before the task errors, e.g. 0.02"
            f" (at most {MAX_ERROR_RATE})",
        ),
        error_direction=v.choice(
            m.get("error_direction", d.error_direction),
            "defaults.error_direction",
            DIRECTION_POLICIES,
        ),
        failure_min_count=v.integer(
            m.get("failure_min_count", d.failure_min_count),
            "defaults.failure_min_count",
            1,
            hi=MAX_ITEMS,
        ),
        disagreements=v.integer(
            m.get("disagreements", d.disagreements), "defaults.disagreements", 0, hi=MAX_ITEMS
        ),
        failure_ratio=v.number(
            m.get("failure_ratio", d.failure_ratio), "defaults.failure_ratio", 1, 1e6
        ),
        checks=_frozen(dict(v.optional_mapping(m.get("checks"), "defaults.checks"))),
        early_stop=_early_stop(v, m.get("early_stop", False), "defaults.early_stop", None),
        slice_by=_slice_by(v, m.get("slice_by", d.slice_by), "defaults.slice_by"),
    )


EARLY_STOP_KEYS = ("batch", "alpha_share")
EARLY_STOP_HINT = "write early_stop: true, or early_stop: {batch: 50, alpha_share: 0.5}"


def _early_stop(v: _V, raw: Any, where: str, base: EarlyStopSpec | None) -> EarlyStopSpec | None:
    """``early_stop: true | false | {batch, alpha_share}`` (a mapping's missing keys from
    ``base``, the defaults' setting, else EarlyStopSpec's)."""
    if raw is None or raw is False:
        return None
    start = base or EarlyStopSpec()
    if raw is True:
        return start
    if not isinstance(raw, Mapping):
        raise v.fail(where, f"expected true, false or a mapping, got {_show(raw)}", EARLY_STOP_HINT)
    m = v.mapping(raw, where)
    v.keys(m, where, EARLY_STOP_KEYS)
    return EarlyStopSpec(
        batch=v.integer(
            m.get("batch", start.batch),
            f"{where}.batch",
            1,
            "items asked between two looks, e.g. 50",
            hi=1_000_000,
        ),
        alpha_share=v.number(
            m.get("alpha_share", start.alpha_share),
            f"{where}.alpha_share",
            0,
            1,
            hint="the share of alpha spent on the early looks, e.g. 0.5 (the rest goes to the"
            " fixed-n verdict when the task runs to the end)",
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


def _task(
    v: _V,
    raw: Any,
    i: int,
    base: Path,
    d: Defaults,
    kinds: tuple[str, ...] = (),
    top_judge: Mapping[str, Any] | None = None,
) -> TaskSpec:
    where = f"tasks[{i}]"
    m = v.mapping(raw, where)
    option_keys = {key: n for n in registry.sources if (key := registry.sources.get(n).options_key)}
    v.keys(m, where, (*TASK_KEYS, *option_keys))
    name = v.string(v.required(m, where, "name", "write name: <task name>"), f"{where}.name")
    if not NAME_RE.match(name):
        raise v.fail(
            f"{where}.name",
            f"{name!r} is not a usable test id",
            "use letters, digits and _ . : - only",
        )
    source = v.choice(m.get("source", "golden"), f"{where}.source", registry.sources.names())
    impl = registry.sources.get(source)
    path: Path | None = None
    if impl.needs_path:
        what = "golden set JSONL" if source == "golden" else f"the {source} data file"
        rel = v.string(
            v.required(m, where, "path", f"write path: <{what}, relative to the contract>"),
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
    if getattr(impl, "scores_itself", False) and "scorer" in m:
        raise v.fail(
            f"{where}.scorer",
            f"the {source} source scores its own items",
            "remove scorer (see the README's section on the source)",
        )
    if (
        "scorer" not in m
        and not impl.runs_itself
        and ":" not in impl.default_scorer
        and impl.default_scorer not in registry.scorers
    ):
        raise v.fail(
            f"{where}.scorer",
            f"required: the {source} source's default scorer {impl.default_scorer!r} is not"
            " installed",
            "name one, e.g. scorer: exact, or 'package.module:function'",
        )
    scorer_raw = m.get("scorer", impl.default_scorer)
    scorer_options: dict[str, Any] = dict(
        v.optional_mapping(m.get("scorer_options"), f"{where}.scorer_options")
    )
    if isinstance(scorer_raw, Mapping):
        sm = dict(scorer_raw)
        scorer = v.string(
            sm.pop("name", None), f"{where}.scorer.name", "write scorer: {name: regex, ...}"
        )
        scorer_options.update(sm)
    else:
        scorer = v.string(scorer_raw, f"{where}.scorer")
    judge = _task_judge(v, m, where, base, d, top_judge)
    if scorer in JUDGE_SCORERS:
        at = f"{where}.scorer"
        scorer_options = _judge_options(v, scorer, scorer_options, judge, base, at, at)
    elif not impl.runs_itself:
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
    params = dict(v.optional_mapping(m.get("params"), f"{where}.params"))
    for kind in dict.fromkeys(kinds):  # sent to both stacks: each kind must accept them
        _check_params(v, params, f"{where}.params", kind)
    template = m.get("template")
    if template is not None:
        template = v.string(template, f"{where}.template")
        if "{prompt}" not in template:
            raise v.fail(
                f"{where}.template", "does not contain {prompt}", "e.g. 'Q: {prompt}\\nA:'"
            )
    categories = dict(v.optional_mapping(m.get("categories"), f"{where}.categories"))
    for cname, pattern in categories.items():
        v.string(pattern, f"{where}.categories.{cname}", "a regular expression")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise v.fail(
                f"{where}.categories.{cname}", f"not a valid regular expression: {exc}"
            ) from None
    for key, owner in option_keys.items():
        if key in m and owner != source:
            raise v.fail(
                f"{where}.{key}",
                f"only a task with source: {owner} reads these",
                f"write source: {owner}",
            )
    own = impl.options_key
    if own is not None and own not in m and impl.options_required:
        raise v.fail(f"{where}.{own}", "required but missing", f"write {own}: {{...}}")
    raw_options = v.optional_mapping(m.get(own), f"{where}.{own}") if own else {}
    source_options = impl.options(raw_options, f"{where}.{own}" if own else where, v, base)
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
        min_items=v.integer(m.get("min_items", d.min_items), f"{where}.min_items", 1, hi=MAX_ITEMS),
        inconclusive=inconclusive,
        max_error_rate=v.number(
            m.get("max_error_rate", d.max_error_rate),
            f"{where}.max_error_rate",
            0,
            MAX_ERROR_RATE,
            lo_open=False,
            hi_open=False,
            hint=f"at most {MAX_ERROR_RATE}: failed requests are not missing at random",
        ),
        error_direction=v.choice(
            m.get("error_direction", d.error_direction),
            f"{where}.error_direction",
            DIRECTION_POLICIES,
        ),
        failure_min_count=1
        if safety
        else v.integer(
            m.get("failure_min_count", d.failure_min_count),
            f"{where}.failure_min_count",
            1,
            hi=MAX_ITEMS,
        ),
        params=_frozen(params),
        system=None if m.get("system") is None else v.string(m["system"], f"{where}.system"),
        template=template,
        limit=None if limit is None else v.integer(limit, f"{where}.limit", 1, hi=MAX_ITEMS),
        cluster_key=None
        if m.get("cluster_key") is None
        else v.string(m["cluster_key"], f"{where}.cluster_key"),
        repeats=v.integer(
            m.get("repeats", 1),
            f"{where}.repeats",
            1,
            "samples per item; the item's score is their mean",
            hi=MAX_REPEATS,
        ),
        categories=_frozen(categories),
        source_options=source_options,
        judge=judge,
        checks=_judged_checks(v, _checks(v, m, where, d), judge, where, base),
        failure_ratio=v.number(
            m.get("failure_ratio", d.failure_ratio), f"{where}.failure_ratio", 1, 1e6
        ),
        score_range=_score_range(v, m.get("score_range"), f"{where}.score_range"),
        early_stop=_task_early_stop(v, m, where, d, impl.runs_itself),
        slice_by=_slice_by(v, m["slice_by"], f"{where}.slice_by")
        if "slice_by" in m
        else d.slice_by,
    )


def _task_early_stop(
    v: _V, m: Mapping[str, Any], where: str, d: Defaults, runs_itself: bool
) -> EarlyStopSpec | None:
    at = f"{where}.early_stop"
    spec = _early_stop(v, m["early_stop"], at, d.early_stop) if "early_stop" in m else d.early_stop
    if spec is None:
        return None
    if runs_itself:
        if "early_stop" not in m:
            return None  # defaults.early_stop applies to the tasks whose items the gate asks
        raise v.fail(
            at,
            f"the {m.get('source')} source asks its own items, so they cannot be stopped early",
            "remove early_stop from this task",
        )
    if m.get("cluster_key") is not None:
        raise v.fail(
            at,
            "early stopping treats items as independent; clustered items are not",
            "remove early_stop, or remove cluster_key",
        )
    return spec


def _checks(v: _V, m: Mapping[str, Any], where: str, d: Defaults) -> Mapping[str, Any]:
    """The checks a task runs and their options: ``checks: {name: true | false | {...}}`` on the
    task over ``defaults.checks``, over each check's own default (see checks/base.py)."""
    given = dict(v.optional_mapping(m.get("checks"), f"{where}.checks"))
    if "bucket_by" in m:
        given["buckets"] = _bucket_by(v, m["bucket_by"], given.get("buckets"), where)
    raw = {**d.checks, **given}
    for name in raw:
        if name not in registry.checks:
            at = f"{where}.checks.{name}" if name in given else f"defaults.checks.{name}"
            raise v.fail(at, registry.checks.unknown(name), "register it in a conftest.py first")
    out: dict[str, Any] = {}
    for name in registry.checks:
        check = registry.checks.get(name)
        setting = raw.get(name)
        at = f"{where}.checks.{name}"
        if setting is None:
            setting = check.default
        if setting is False:
            continue
        if setting is True:
            setting = {}
        if not isinstance(setting, Mapping):
            raise v.fail(at, f"expected true, false or a mapping, got {_show(setting)}")
        out[name] = check.options(setting, at, v, m)
    if not out:
        raise v.fail(f"{where}.checks", "every check is turned off", "leave at least one check on")
    frozen: Mapping[str, Any] = _frozen(out)
    return frozen


def _bucket_by(v: _V, value: Any, buckets: Any, where: str) -> Mapping[str, Any]:
    """``bucket_by: <field>`` on a task is ``checks: {buckets: {by: <field>}}`` written short
    (the buckets check, one concept): merged with the task's ``checks.buckets`` options (edges,
    tolerance), never contradicting them."""
    at = f"{where}.bucket_by"
    by = v.string(value, at, "e.g. bucket_by: context_tokens (a numeric metadata field)")
    if buckets is False:
        raise v.fail(at, "bucket_by is set but checks.buckets is false",
                     "drop one of the two")  # fmt: skip
    if buckets is None or buckets is True:
        return {"by": by}
    if not isinstance(buckets, Mapping):
        return buckets  # type: ignore[no-any-return]  # _checks names the bad value
    if "by" in buckets and buckets["by"] != by:
        raise v.fail(
            at,
            f"bucket_by: {by} contradicts checks.buckets.by: {buckets['by']}",
            "give the field once",
        )
    return {**buckets, "by": by}


MAX_SLICE_FIELDS = 8
SLICE_BY_HINT = "e.g. slice_by: subject, slice_by: [subject, level], slice_by: auto or false"


def _slice_by(v: _V, value: Any, where: str) -> SliceBy:
    """``slice_by: auto | false | <field> | [<field>, ...]``: the metadata fields of the task's
    exploratory slices (checks/slices.py); ``true`` is ``auto``, ``false`` and ``[]`` none."""
    if value == "auto" or value is True:
        return "auto"
    if value is False or value is None:
        return ()
    fields = [value] if isinstance(value, str) else value
    if not isinstance(fields, list | tuple):
        raise v.fail(
            where,
            f"expected a metadata field, a list of fields, auto or false, got {_show(value)}",
            SLICE_BY_HINT,
        )
    if len(fields) > MAX_SLICE_FIELDS:
        raise v.fail(
            where,
            f"{len(fields)} fields, at most {MAX_SLICE_FIELDS}: every slice is one more"
            " comparison that can look worse by chance",
            "keep the fields you will read; declare a slice that matters as its own task",
        )
    out: list[str] = []
    for i, f in enumerate(fields):
        at = f"{where}[{i}]" if not isinstance(value, str) else where
        if f == "auto":
            raise v.fail(at, "auto cannot be listed with fields", "write slice_by: auto alone")
        name = v.string(f, at, SLICE_BY_HINT)
        if name in out:
            raise v.fail(at, f"{name!r} is listed twice", "list each field once")
        out.append(name)
    return tuple(out)


# -- LLM-as-judge: the judge endpoint (role "judge") and the judge scorers' options ------------

JUDGE_SCORERS = ("judge-rubric", "judge-pairwise")


def _task_judge(
    v: _V,
    m: Mapping[str, Any],
    where: str,
    base: Path,
    d: Defaults,
    top: Mapping[str, Any] | None,
) -> EndpointSpec | None:
    """The task's judge: its own ``judge:`` (keys laid over the top-level judge's), else the
    top-level one; the endpoint's role is always "judge" (its own cache entries and recording)."""
    from dataclasses import replace

    own = m.get("judge")
    if own is None and top is None:
        return None
    raw: Mapping[str, Any] = top or {}
    label = "judge"
    if own is not None:
        raw = {**raw, **v.mapping(own, f"{where}.judge")}
        label = f"{where}.judge"
    return replace(_endpoint(v, raw, label, base, d), role="judge")


def _judge_options(
    v: _V,
    scorer: str,
    options: Mapping[str, Any],
    judge: EndpointSpec | None,
    base: Path,
    scorer_at: str,
    options_at: str,
) -> dict[str, Any]:
    """A judge scorer's options resolved (files read, the shipped template and defaults filled
    in); problems name ``<options_at>.<key>``, a missing judge endpoint ``scorer_at``."""
    # by name through the registry: the contract layer does not import scoring/
    opts = registry.lazy("pytest_parity.scoring.judge.options:judge_options")()
    recorded_kind = registry.lazy("pytest_parity.scoring.judge.options:recorded_kind")()
    JudgeOptionError = registry.lazy("pytest_parity.scoring.judge.options:JudgeOptionError")()

    if judge is None:
        raise v.fail(
            scorer_at,
            f"{scorer} needs a judge endpoint",
            "add judge: {kind: openai, base_url: ..., model: ...} at the top level or to the task",
        )
    kind = judge.kind
    if kind == "replay" and judge.recording is not None:
        # A replayed judge asks what the recorded one was asked (the same response_format).
        kind = recorded_kind(judge.recording) or kind
    try:
        found: dict[str, Any] = opts(scorer, options, base, kind)
        return found
    except JudgeOptionError as exc:
        raise v.fail(f"{options_at}.{exc.key}", exc.problem, exc.hint) from None


def _judged_checks(
    v: _V,
    checks: Mapping[str, Any],
    judge: EndpointSpec | None,
    where: str,
    base: Path,
) -> Mapping[str, Any]:
    """A check whose ``rubric_scorer`` is a judge scorer (the tone check's judge-rubric or
    judge-pairwise) gets its ``rubric_options`` resolved exactly as a task's main judge scorer
    gets its options: one line now for a bad option, never a KeyError per item at run time."""
    out: dict[str, Any] = dict(checks)
    changed = False
    for name, opts in checks.items():
        scorer = opts.get("rubric_scorer") if isinstance(opts, Mapping) else None
        if scorer not in JUDGE_SCORERS:
            continue
        at = f"{where}.checks.{name}"
        raw = dict(opts.get("rubric_options") or {})
        if raw.get("recheck") not in (None, 0):
            raise v.fail(
                f"{at}.rubric_options.recheck",
                f"the {name} rubric reports no judge consistency figure",
                "remove recheck (it would only ask the judge again)",
            )
        raw["recheck"] = 0
        resolved = _judge_options(
            v, str(scorer), raw, judge, base, f"{at}.rubric_scorer", f"{at}.rubric_options"
        )
        # its own judgement ids (``<task>/<item>#judge:tone:grade:baseline``): never the same
        # request, cache entry or recorded line as the main scorer's judgement of the answer
        resolved["purpose"] = name
        out[name] = {**opts, "rubric_options": resolved}
        changed = True
    return _frozen(out) if changed else checks


def _expand(v: _V, task: TaskSpec) -> list[TaskSpec]:
    """A source may turn one task into several (one per traffic segment...)."""
    return list(registry.sources.get(task.source).expand(task, v))


def _score_range(v: _V, raw: Any, where: str) -> tuple[float, float] | None:
    """``score_range: [0, 100]``: the scorer's scale, rescaled to [0, 1] before any statistic."""
    if raw is None:
        return None
    hint = "write score_range: [low, high], e.g. [0, 100] for a 0-100 rubric"
    if not isinstance(raw, list) or len(raw) != 2:
        raise v.fail(where, f"expected [low, high], got {_show(raw)}", hint)
    low = v.number(raw[0], f"{where}[0]", -1e12, 1e12, lo_open=False)
    high = v.number(raw[1], f"{where}[1]", -1e12, 1e12, lo_open=False)
    if not high > low:
        raise v.fail(where, f"high {high:g} is not above low {low:g}", hint)
    return (float(low), float(high))


def _check_scorer(v: _V, scorer: str, options: Mapping[str, Any], where: str) -> None:
    if ":" in scorer:
        return  # custom scorer by import path: resolved (and checked) when the task runs
    known = registry.scorers.names()
    if scorer not in known:
        raise v.fail(
            where,
            f"unknown scorer {scorer!r}{_did_you_mean(scorer, known)}",
            f"known scorers: {', '.join(known)}; or 'package.module:function'",
        )
    if scorer not in registry.lazy("pytest_parity.scoring.builtin:SCORERS")():
        return  # a registered scorer (the judge's...) checks its own options when it is bound
    check_options = registry.lazy("pytest_parity.scoring.builtin:check_options")()
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
    # Top-level keys starting with "x-" are the author's own (anchors for `<<: *base` merges).
    v.keys({k: x for k, x in m.items() if not k.startswith("x-")}, "", TOP_KEYS)
    version = m.get("version", CONTRACT_VERSION)
    if version != CONTRACT_VERSION:
        raise v.fail("version", f"unsupported contract version {version!r}", "write version: 1")
    base = path.resolve().parent
    defaults = _defaults(v, m.get("defaults"))
    top_judge = None if m.get("judge") is None else dict(v.mapping(m["judge"], "judge"))
    judge = None if top_judge is None else _task_judge(v, {}, "", base, defaults, top_judge)
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
        for t in _expand(
            v, _task(v, rt, i, base, defaults, (baseline.kind, candidate.kind), top_judge)
        ):
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
        description=None
        if m.get("description") is None
        else v.string(m["description"], "description", "free text, e.g. description: fp16 -> fp8"),
        judge=judge,
        monitor=None if m.get("monitor") is None else monitor_options(v, m["monitor"], tasks),
    )


# -- the drift monitor (pytest --parity-monitor) -------------------------------------------------

MONITOR_KEYS = (
    "tasks",
    "alpha",
    "alert_at",
    "settle",
    "max_pairs",
    "webhook",
    "links",
    "reference",
    "examples",
)
WEBHOOK_KEYS = ("url", "url_env", "headers_env", "retries", "timeout", "send_resolved")
MONITOR_WINDOW_KEYS = ("last", "since", "until")


def _duration(v: _V, raw: Any, where: str) -> float:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", str(raw))
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw >= 0:
        return float(raw)
    if m is None:
        raise v.fail(where, f"not a duration: {raw!r}", "write e.g. 90s, 5m, 24h or 7d")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * unit


def _epoch(v: _V, raw: Any, where: str) -> float | None:
    """A time as epoch seconds: an ISO 8601 string, a YAML date-time or a number."""
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return (raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    try:
        dt = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise v.fail(
            where, f"not a time: {raw!r}", 'write an ISO 8601 time, e.g. "2026-11-01T00:00:00Z"'
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _http_url(v: _V, raw: Any, where: str) -> str:
    url = v.string(raw, where, "an http:// or https:// URL")
    if not re.match(r"^https?://[^/\s]+", url):
        raise v.fail(where, f"not an http(s) URL: {url!r}", "write https://host/path")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise v.fail(
            where,
            "the URL holds a user or password; a contract never holds a secret",
            "put the URL in a variable and name it in url_env, or send a header from headers_env",
        )
    return url


def monitor_options(v: _V, raw: Any, tasks: list[TaskSpec]) -> Mapping[str, Any]:
    """The ``monitor:`` block: which tasks, the alert level, the webhook, the reference window
    of the input-shift panels; every problem is one ``v.fail`` line."""
    m = v.mapping(raw, "monitor")
    v.keys(m, "monitor", MONITOR_KEYS)
    shadow = [t.name for t in tasks if t.source == "shadow"]
    out: dict[str, Any] = {}
    names = m.get("tasks")
    if names is None:
        out["tasks"] = shadow
    else:
        if not isinstance(names, list) or not names:
            raise v.fail("monitor.tasks", "expected a non-empty list of task names")
        for i, name in enumerate(names):
            if name not in shadow:
                raise v.fail(
                    f"monitor.tasks[{i}]",
                    f"{name!r} is not a task with source: shadow{_did_you_mean(str(name), shadow)}",
                    f"tasks with source: shadow: {', '.join(shadow) or 'none'}",
                )
        out["tasks"] = [str(n) for n in names]
    if not out["tasks"]:
        raise v.fail(
            "monitor", "no task with source: shadow to monitor", "add a task with source: shadow"
        )
    out["alpha"] = v.number(m.get("alpha", 0.05), "monitor.alpha", 0, 0.5, hint="e.g. 0.05")
    out["alert_at"] = v.number(
        m.get("alert_at", 0.5),
        "monitor.alert_at",
        0,
        1,
        hi_open=False,
        hint="a share of the task's tolerance: 0.5 alerts at half of it",
    )
    out["settle"] = _duration(v, m.get("settle", "5m"), "monitor.settle")
    out["max_pairs"] = v.integer(m.get("max_pairs", 5000), "monitor.max_pairs", 1)
    out["examples"] = v.integer(m.get("examples", 3), "monitor.examples", 0, hi=50)
    links = m.get("links")
    if links is not None:
        links = v.string(links, "monitor.links", "a URL with {pair_id}")
        if "{pair_id}" not in links:
            raise v.fail(
                "monitor.links",
                "does not contain {pair_id}",
                "e.g. https://grafana.example/d/shadow?var-pair={pair_id}",
            )
        try:
            links.format(pair_id=1, segment="s", task="t")
        except (KeyError, IndexError, ValueError) as exc:
            raise v.fail(
                "monitor.links", f"not a usable template: {exc}", "use {pair_id}, {segment}, {task}"
            ) from None
    out["links"] = links
    ref = v.mapping(m.get("reference") or {"last": "7d"}, "monitor.reference")
    v.keys(ref, "monitor.reference", MONITOR_WINDOW_KEYS)
    if "last" in ref and ("since" in ref or "until" in ref):
        raise v.fail("monitor.reference.last", "give last or since/until, not both")
    last = ref.get("last")
    out["reference"] = {
        "last": None if last is None else _duration(v, last, "monitor.reference.last"),
        "since": _epoch(v, ref.get("since"), "monitor.reference.since"),
        "until": _epoch(v, ref.get("until"), "monitor.reference.until"),
    }
    hook = m.get("webhook")
    if hook is None:
        out["webhook"] = None
    else:
        hm = {"url": hook} if isinstance(hook, str) else dict(v.mapping(hook, "monitor.webhook"))
        v.keys(hm, "monitor.webhook", WEBHOOK_KEYS)
        if ("url" in hm) == ("url_env" in hm):
            raise v.fail(
                "monitor.webhook.url",
                "give exactly one of url and url_env",
                "write webhook: https://alertmanager.example/api/v2/alerts",
            )
        w: dict[str, Any] = {"url": None, "url_env": None}
        if "url" in hm:
            w["url"] = _http_url(v, hm["url"], "monitor.webhook.url")
        else:
            env = v.string(hm["url_env"], "monitor.webhook.url_env")
            if not ENV_NAME_RE.match(env):
                raise v.fail("monitor.webhook.url_env", f"not a variable name: {env!r}")
            w["url_env"] = env
        headers = dict(v.mapping(hm.get("headers_env") or {}, "monitor.webhook.headers_env"))
        for name, env in headers.items():
            if not _HEADER_NAME.match(name):
                raise v.fail(f"monitor.webhook.headers_env.{name}", "not an HTTP header name")
            if not isinstance(env, str) or not ENV_NAME_RE.match(env):
                raise v.fail(
                    f"monitor.webhook.headers_env.{name}",
                    f"expected the name of an environment variable, got {_show(env)}",
                    "the header's value is read from that variable when the alert is sent",
                )
        w["headers_env"] = headers
        w["retries"] = v.integer(hm.get("retries", 3), "monitor.webhook.retries", 0, hi=MAX_RETRIES)
        w["timeout"] = v.number(hm.get("timeout", 10), "monitor.webhook.timeout", 0, 600)
        w["send_resolved"] = v.boolean(
            hm.get("send_resolved", True), "monitor.webhook.send_resolved"
        )
        out["webhook"] = w
    frozen: Mapping[str, Any] = _frozen(out)
    return frozen
