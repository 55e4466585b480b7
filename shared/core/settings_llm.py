"""Part of ``Settings``: the optional language model that phrases answers (issue 12 item 6).

``Settings`` inherits these, so every field is still ``settings.<name>`` read from
``MAILCHAT_<NAME>``. With no base URL there is no model: answers are rule-based,
exactly as before, and nothing here is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LlmSettings:
    llm_base_url: str = field(
        default="",
        metadata={
            "doc": "OpenAI-compatible API base URL (llama.cpp's server, Ollama, vLLM: "
            "`http://host:port/v1`; OpenAI: `https://api.openai.com/v1`) of a model that "
            "phrases answers; empty = no model, rule-based answers",
            "url": True,
        },
    )
    llm_model: str = field(
        default="",
        metadata={
            "doc": "Model name sent with each request (Ollama, vLLM and OpenAI need it; "
            "llama.cpp's server takes any); empty sends `default`"
        },
    )
    llm_api_key: str = field(
        default="",
        metadata={
            "doc": "Bearer key for the model's API (OpenAI's; local servers take any)",
            "secret": True,
        },
    )
    llm_timeout_seconds: float = field(
        default=8.0,
        metadata={
            "doc": "Time the model's whole reply may take; past it (or on an error or empty "
            "reply) the rule-based answer is sent, saying so. Keep it below "
            "ANSWER_SOFT_TIME_LIMIT_SECONDS minus the search's time"
        },
    )
    llm_max_tokens: int = field(
        default=400, metadata={"doc": "Longest reply asked of the model (tokens)"}
    )
