"""What each endpoint kind accepts: pure data, shared by the contract (validation) and the endpoints.

A contract names an endpoint ``kind``; every sampling parameter it sets must be one that kind's
server really accepts, so a typo or a parameter the server would ignore is a contract error
instead of a silent drop.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """One endpoint kind: the parameters its server accepts and its protocol family."""

    name: str
    protocol: str  # "openai" | "anthropic" | "replay"
    params: frozenset[str]
    needs_base_url: bool = True
    default_api_key_env: str | None = None


KINDS: dict[str, KindInfo] = {
    "openai": KindInfo("openai", "openai", OPENAI_PARAMS),
    "vllm": KindInfo("vllm", "openai", OPENAI_PARAMS | VLLM_EXTRA),
    "sglang": KindInfo("sglang", "openai", OPENAI_PARAMS | SGLANG_EXTRA),
    "tensorrt-llm": KindInfo("tensorrt-llm", "openai", OPENAI_PARAMS | TRTLLM_EXTRA),
    "llama-cpp": KindInfo("llama-cpp", "openai", OPENAI_PARAMS | LLAMA_CPP_EXTRA),
    "anthropic": KindInfo("anthropic", "anthropic", ANTHROPIC_PARAMS),
    "replay": KindInfo("replay", "replay", OPENAI_PARAMS | ANTHROPIC_PARAMS, needs_base_url=False),
}
