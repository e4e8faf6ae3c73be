"""What each endpoint kind accepts and how it speaks: pure data and pure functions on dicts.

A contract names an endpoint ``kind``; every sampling parameter it sets must be one that kind's
server really accepts, so a typo or a parameter the server would ignore is a contract error
instead of a silent drop. The endpoint layer turns a request into the kind's wire payload and the
kind's reply into one normalised shape with the functions here, so they are testable without HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Parameters of OpenAI's chat/completions APIs that OpenAI-compatible servers share.
OPENAI_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "n",
        "tools",
        "tool_choice",
        "response_format",
        "parallel_tool_calls",
        "reasoning_effort",
        "user",
    }
)

# Extra sampling parameters of the self-hosted engines' OpenAI-compatible servers.
VLLM_EXTRA = frozenset(
    {
        "top_k",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "min_tokens",
        "ignore_eos",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "stop_token_ids",
        "include_stop_str_in_output",
        "guided_json",
        "guided_regex",
        "guided_choice",
        "guided_grammar",
        "structured_outputs",
        "chat_template_kwargs",
        "add_generation_prompt",
        "continue_final_message",
        "truncate_prompt_tokens",
        "prompt_logprobs",
        "bad_words",
    }
)
SGLANG_EXTRA = frozenset(
    {
        "top_k",
        "min_p",
        "repetition_penalty",
        "min_tokens",
        "ignore_eos",
        "skip_special_tokens",
        "no_stop_trim",
        "stop_token_ids",
        "regex",
        "ebnf",
        "json_schema",
        "chat_template_kwargs",
        "separate_reasoning",
        "continue_final_message",
        "lora_path",
    }
)
TRTLLM_EXTRA = frozenset(
    {
        "top_k",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "min_tokens",
        "ignore_eos",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "stop_token_ids",
        "include_stop_str_in_output",
        "add_special_tokens",
        "chat_template_kwargs",
        "lora_request",
    }
)
LLAMA_CPP_EXTRA = frozenset(
    {
        "top_k",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "mirostat_mode",
        "mirostat_tau",
        "mirostat_eta",
        "grammar",
        "logit_bias_type",
        "echo",
        "suffix",
        "n_probs",
    }
)
ANTHROPIC_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
    }
)


@dataclass(frozen=True)
class KindInfo:
    """One endpoint kind: the parameters its server accepts, its protocol family, and where its
    server tells who it is (paths relative to the server root, i.e. base URL without ``/v1``)."""

    name: str
    protocol: str  # "openai" | "anthropic" | "replay" | "captured"
    params: frozenset[str]
    needs_base_url: bool = True
    default_api_key_env: str | None = None
    identity_paths: tuple[str, ...] = ("/v1/models",)
    vendor_host: str | None = None  # the only host ``default_api_key_env`` is sent to

    def default_key_env(self, base_url: str) -> str | None:
        """``default_api_key_env`` when ``base_url`` is the vendor's own API over https, else
        None: the host is compared whole, once parsed, so ``api.openai.com.evil.example``,
        ``api.openai.com@evil.example`` or a relay whose path names the vendor never get the key."""
        if self.vendor_host is None or self.default_api_key_env is None:
            return None
        from urllib.parse import urlsplit

        try:
            url = urlsplit(base_url)
            host = (url.hostname or "").rstrip(".")
            url.port  # noqa: B018 (raises on a malformed port)
        except ValueError:
            return None
        if url.scheme != "https" or url.username is not None or host != self.vendor_host:
            return None
        return self.default_api_key_env


KINDS: dict[str, KindInfo] = {
    "openai": KindInfo(
        "openai",
        "openai",
        OPENAI_PARAMS,
        default_api_key_env="OPENAI_API_KEY",
        vendor_host="api.openai.com",
    ),
    "vllm": KindInfo(
        "vllm", "openai", OPENAI_PARAMS | VLLM_EXTRA, identity_paths=("/v1/models", "/version")
    ),
    "sglang": KindInfo(
        "sglang",
        "openai",
        OPENAI_PARAMS | SGLANG_EXTRA,
        identity_paths=("/v1/models", "/get_model_info", "/get_server_info"),
    ),
    "tensorrt-llm": KindInfo(
        "tensorrt-llm",
        "openai",
        OPENAI_PARAMS | TRTLLM_EXTRA,
        identity_paths=("/v1/models", "/version"),
    ),
    "llama-cpp": KindInfo(
        "llama-cpp",
        "openai",
        OPENAI_PARAMS | LLAMA_CPP_EXTRA,
        identity_paths=("/v1/models", "/props"),
    ),
    "anthropic": KindInfo(
        "anthropic",
        "anthropic",
        ANTHROPIC_PARAMS,
        default_api_key_env="ANTHROPIC_API_KEY",
        identity_paths=(),
        vendor_host="api.anthropic.com",
    ),
    "replay": KindInfo(
        "replay",
        "replay",
        OPENAI_PARAMS | ANTHROPIC_PARAMS | VLLM_EXTRA | SGLANG_EXTRA | LLAMA_CPP_EXTRA,
        needs_base_url=False,
        identity_paths=(),
    ),
    # The production answers captured with the traffic (source: traffic): no server at all.
    "captured": KindInfo(
        "captured",
        "captured",
        OPENAI_PARAMS | ANTHROPIC_PARAMS | VLLM_EXTRA | SGLANG_EXTRA | LLAMA_CPP_EXTRA,
        needs_base_url=False,
        identity_paths=(),
    ),
}

ANTHROPIC_VERSION = "2023-06-01"
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
_FINISH = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}


class MalformedReply(ValueError):
    """A 200 reply that is not a usable answer (retried: servers under load send these)."""


def normalise_finish_reason(raw: Any) -> str | None:
    """One vocabulary for all servers: stop, length, tool_calls, content_filter (else None)."""
    return _FINISH.get(raw) if isinstance(raw, str) else None


def server_root(base_url: str) -> str:
    """The server's root URL: engines serve their identity routes beside ``/v1``, not under it."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def request_url(info: KindInfo, base_url: str, api: str) -> str:
    base = base_url.rstrip("/")
    if info.protocol == "anthropic":
        # The Anthropic SDK's base URL has no /v1; accept both spellings.
        return (base if base.endswith("/v1") else base + "/v1") + "/messages"
    return base + ("/chat/completions" if api == "chat" else "/completions")


# ----------------------------------------------------------------------------------------------
# requests


def build_payload(
    info: KindInfo,
    api: str,
    model: str,
    params: Mapping[str, Any],
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    """The JSON body for one request, in the kind's dialect (plain dicts only)."""
    if info.protocol == "anthropic":
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        return _anthropic_payload(model, params, messages)
    p = dict(params)
    if api == "chat":
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        tokens_key = "max_completion_tokens" if info.name == "openai" else "max_tokens"
        other = "max_tokens" if tokens_key == "max_completion_tokens" else "max_completion_tokens"
        if other in p:
            p.setdefault(tokens_key, p.pop(other))
        if "logprobs" in p and not isinstance(p["logprobs"], bool):
            # The completions API's "logprobs: k" spelled for chat: a flag plus top_logprobs.
            k = int(p["logprobs"])
            p["logprobs"] = True
            if k > 0:
                p.setdefault("top_logprobs", k)
        msgs = [dict(m) for m in messages]
        if info.name == "llama-cpp":
            # llama-cpp-python's server refuses an assistant turn whose content is null (OpenAI's
            # spelling when the turn only calls tools): the same turn with empty text.
            for m in msgs:
                if m.get("content") is None and m.get("role") == "assistant":
                    m["content"] = ""
        return {"model": model, "messages": msgs, **p}
    if prompt is None:
        raise ValueError("the completions API needs a prompt, not chat messages (set api: chat)")
    if "max_completion_tokens" in p:
        p.setdefault("max_tokens", p.pop("max_completion_tokens"))
    if isinstance(p.get("logprobs"), bool):
        top = int(p.pop("top_logprobs", 0) or 0)
        if p["logprobs"]:
            p["logprobs"] = top
        else:
            del p["logprobs"]
    p.pop("top_logprobs", None)
    return {"model": model, "prompt": prompt, **p}


def _anthropic_payload(
    model: str, params: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    p = dict(params)
    p.pop("seed", None)  # no Anthropic equivalent; greedy decoding does not depend on it
    if "max_completion_tokens" in p:
        p.setdefault("max_tokens", p.pop("max_completion_tokens"))
    p.setdefault("max_tokens", 1024)  # required by the Messages API
    if "stop" in p:
        stop = p.pop("stop")
        p.setdefault("stop_sequences", [stop] if isinstance(stop, str) else list(stop))
    if "tools" in p:
        p["tools"] = [_anthropic_tool(t) for t in p["tools"]]
    if "tool_choice" in p:
        p["tool_choice"] = _anthropic_tool_choice(p["tool_choice"])
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(str(m.get("content") or ""))
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id", ""),
                "content": str(m.get("content") or ""),
            }
            out.append({"role": "user", "content": [block]})
        elif role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": str(m["content"])})
            for tc in m["tool_calls"]:
                fn = tc.get("function", tc)
                args = fn.get("arguments", "{}")
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tc.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": json.loads(args) if isinstance(args, str) else dict(args),
                    }
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": role, "content": m.get("content")})
    body: dict[str, Any] = {"model": model, "messages": out, **p}
    if system:
        body["system"] = "\n\n".join(system)
    return body


def _anthropic_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if "input_schema" in tool:
        return dict(tool)
    fn = tool.get("function", tool)
    out = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object"}}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _anthropic_tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return {"type": {"required": "any"}.get(choice, choice)}
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "tool", "name": choice["function"]["name"]}
    return choice


# ----------------------------------------------------------------------------------------------
# replies


def parse_reply(info: KindInfo, api: str, data: Any) -> dict[str, Any]:
    """Normalise a 200 reply: text, finish_reason, tool_calls, usage, logprobs, model.

    Raises :class:`MalformedReply` (with a short reason) when it is not an answer.
    """
    if not isinstance(data, Mapping):
        raise MalformedReply(f"expected a JSON object, got {type(data).__name__}")
    if info.protocol == "anthropic":
        return _parse_anthropic(data)
    if data.get("error") or data.get("object") == "error":
        # Some OpenAI-compatible servers report errors with status 200.
        err = data.get("error") or data
        msg = err.get("message", err) if isinstance(err, Mapping) else err
        raise MalformedReply(f"the reply is an error: {msg}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("the reply has no choices")
    choice = choices[0]
    if not isinstance(choice, Mapping):
        raise MalformedReply("choices[0] is not an object")
    tool_calls: list[dict[str, str]] = []
    logprobs: list[float] | None = None
    tokens: list[str] | None = None
    tops: list[dict[str, float]] | None = None
    lp = choice.get("logprobs")
    if api == "chat":
        msg = choice.get("message")
        if not isinstance(msg, Mapping):
            raise MalformedReply("choices[0] has no message")
        text = msg.get("content") or ""
        calls = msg.get("tool_calls") or []
        if msg.get("function_call"):
            calls = [*calls, {"function": msg["function_call"]}]
        for tc in calls:
            fn = tc.get("function", {}) if isinstance(tc, Mapping) else {}
            args = fn.get("arguments", "")
            call = {
                "name": str(fn.get("name", "")),
                "arguments": args if isinstance(args, str) else json.dumps(args),
            }
            # The id pairs a tool's result with its call in a multi-step conversation.
            if isinstance(tc, Mapping) and isinstance(tc.get("id"), str) and tc["id"]:
                call["id"] = tc["id"]
            tool_calls.append(call)
        if isinstance(lp, Mapping) and isinstance(lp.get("content"), list):
            logprobs, tokens, tops = _chat_logprobs(lp["content"])
    else:
        text = choice.get("text")
        if isinstance(lp, Mapping) and isinstance(lp.get("token_logprobs"), list):
            logprobs, tokens, tops = _completion_logprobs(lp)
    if not isinstance(text, str):
        raise MalformedReply("choices[0] has no text")
    return {
        "text": text,
        "finish_reason": normalise_finish_reason(choice.get("finish_reason")),
        "tool_calls": tool_calls,
        "usage": _usage(data.get("usage")),
        "logprobs": logprobs,
        "tokens": tokens,
        "top_logprobs": tops,
        "model": data.get("model") if isinstance(data.get("model"), str) else None,
    }


def _logprob(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return max(float(x), -1e4)  # -inf (a token the server ruled out) stays a finite JSON number


def _chat_logprobs(
    content: list[Any],
) -> tuple[list[float], list[str], list[dict[str, float]] | None]:
    """The chat API's ``logprobs.content``: ``[{token, logprob, top_logprobs: [{token,
    logprob}]}]`` (OpenAI, vLLM, SGLang, TensorRT-LLM, llama.cpp all use this shape)."""
    logprobs: list[float] = []
    tokens: list[str] = []
    tops: list[dict[str, float]] = []
    any_top = False
    for t in content:
        if not isinstance(t, Mapping):
            continue
        lp = _logprob(t.get("logprob"))
        if lp is None:
            continue
        logprobs.append(lp)
        tokens.append(str(t.get("token", "")))
        top: dict[str, float] = {}
        for alt in t.get("top_logprobs") or ():
            if isinstance(alt, Mapping) and (a := _logprob(alt.get("logprob"))) is not None:
                top.setdefault(str(alt.get("token", "")), a)
        any_top = any_top or bool(top)
        tops.append(top)
    return logprobs, tokens, tops if any_top else None


def _completion_logprobs(
    lp: Mapping[str, Any],
) -> tuple[list[float], list[str], list[dict[str, float]] | None]:
    """The completions API's ``logprobs``: parallel ``tokens``, ``token_logprobs`` and
    ``top_logprobs`` (a list of ``{token: logprob}``; null entries for an echoed first token)."""
    raw_tokens = lp.get("tokens") if isinstance(lp.get("tokens"), list) else None
    raw_tops = lp.get("top_logprobs") if isinstance(lp.get("top_logprobs"), list) else None
    logprobs: list[float] = []
    tokens: list[str] = []
    tops: list[dict[str, float]] = []
    any_top = False
    for i, x in enumerate(lp["token_logprobs"]):
        v = _logprob(x)
        if v is None:
            continue
        logprobs.append(v)
        tokens.append(str(raw_tokens[i]) if raw_tokens is not None and i < len(raw_tokens) else "")
        top: dict[str, float] = {}
        entry = raw_tops[i] if raw_tops is not None and i < len(raw_tops) else None
        if isinstance(entry, Mapping):
            for tok, a in entry.items():
                if (av := _logprob(a)) is not None:
                    top[str(tok)] = av
        any_top = any_top or bool(top)
        tops.append(top)
    return logprobs, tokens, tops if any_top else None


def _parse_anthropic(data: Mapping[str, Any]) -> dict[str, Any]:
    if data.get("type") == "error":
        err = data.get("error")
        msg = err.get("message", err) if isinstance(err, Mapping) else err
        raise MalformedReply(f"the reply is an error: {msg}")
    content = data.get("content")
    if not isinstance(content, list):
        raise MalformedReply("the reply has no content list")
    texts: list[str] = []
    tool_calls: list[dict[str, str]] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            call = {
                "name": str(block.get("name", "")),
                "arguments": json.dumps(block.get("input", {})),
            }
            if isinstance(block.get("id"), str) and block["id"]:
                call["id"] = block["id"]
            tool_calls.append(call)
    raw_usage = data.get("usage")
    usage: dict[str, int] = {}
    if isinstance(raw_usage, Mapping):
        inp, out = raw_usage.get("input_tokens"), raw_usage.get("output_tokens")
        if isinstance(inp, int) and isinstance(out, int):
            usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
    return {
        "text": "".join(texts),
        "finish_reason": normalise_finish_reason(data.get("stop_reason")),
        "tool_calls": tool_calls,
        "usage": usage,
        "logprobs": None,
        "model": data.get("model") if isinstance(data.get("model"), str) else None,
    }


def _usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        return {}
    return {
        k: v
        for k, v in raw.items()
        if k in ("prompt_tokens", "completion_tokens", "total_tokens")
        and isinstance(v, int)
        and not isinstance(v, bool)
    }


def engine_facts(path: str, data: Any) -> dict[str, Any]:
    """What an identity route says about the engine (best effort: unknown shapes give {})."""
    if not isinstance(data, Mapping):
        return {}
    facts: dict[str, Any] = {}
    if path == "/v1/models" and isinstance(data.get("data"), list):
        models = [m for m in data["data"] if isinstance(m, Mapping)]
        facts["served_models"] = [str(m.get("id")) for m in models[:20]]  # OpenAI lists ~100
        for m in models[:1]:
            if isinstance(m.get("owned_by"), str):
                facts["owned_by"] = m["owned_by"]
            if isinstance(m.get("root"), str):
                facts["model_root"] = m["root"]
            if isinstance(m.get("max_model_len"), int):
                facts["max_model_len"] = m["max_model_len"]
    elif path == "/props":
        for key in ("build_info", "model_path", "model_alias", "total_slots"):
            if key in data and isinstance(data[key], str | int):
                facts[key] = data[key]
        if isinstance(data.get("build_info"), str):
            facts["version"] = data["build_info"]
    elif path == "/get_model_info":
        for key in ("model_path", "tokenizer_path", "weight_version"):
            if isinstance(data.get(key), str):
                facts[key] = data[key]
    elif isinstance(data.get("version"), str):  # vLLM and trtllm-serve /version, SGLang info
        facts["version"] = data["version"]
    return facts
