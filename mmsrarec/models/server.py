"""An LLM behind an OpenAI-compatible server (`llm_server_url`): vLLM in production (its
prefix caching serves the candidates' shared prompt prefix once), llama.cpp's server on a CPU.

Only `/v1/completions` is used, with prompts already rendered by the local tokenizer's chat
template, so the server sees exactly the text the in-process model would:

- `complete`: greedy text (the summarizer's keywords, the preference sentence);
- `first_token_logprobs`: `max_tokens=1` with `logprobs=k`, the top-k log-probabilities
  of the first answer token (the yes/no scorer reads p(yes) and p(no) from them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmsrarec.errors import ConfigError

TOP_LOGPROBS = 20  # vLLM's default cap on `logprobs`; yes/no tokens sit far above it


@dataclass(frozen=True)
class Completion:
    """One greedy completion: its text and whether it ran out of tokens (`max_tokens`)."""

    text: str
    cut: bool


class CompletionServer:
    """A client of one OpenAI-compatible completions endpoint.

    Args:
        url: The API root, e.g. `http://127.0.0.1:8080/v1`.
        model: The served model's name; default: the first one `/v1/models` lists.
        timeout: Seconds per request.
        client: An `openai.OpenAI` to use instead of building one (tests, custom transport).
    """

    def __init__(
        self, url: str, model: str | None = None, timeout: float = 120.0, client: Any = None
    ) -> None:
        import openai  # only the server backend needs it

        self.url = url
        self._errors = (openai.APIConnectionError, openai.APIStatusError)
        # Local servers take any key; a proxy in front of vLLM may want OPENAI_API_KEY.
        self.client = client or openai.OpenAI(
            base_url=url, api_key="unused", timeout=timeout, max_retries=2
        )
        self._model = model

    @property
    def model(self) -> str:
        if self._model is None:
            try:
                listed = [entry.id for entry in self.client.models.list()]
            except self._errors as exc:
                raise self._unreachable(exc) from None
            if not listed:
                raise ConfigError(f"`llm_server_url` {self.url} serves no model")
            self._model = listed[0]
        return self._model

    @property
    def name(self) -> str:
        """Recorded in traces and cache keys: the server's model."""
        return f"server:{self.model}"

    def _create(self, prompt: str, **options: Any) -> Any:
        try:
            response = self.client.completions.create(
                model=self.model, prompt=prompt, temperature=0.0, **options
            )
        except self._errors as exc:
            raise self._unreachable(exc) from None
        return response.choices[0]

    def _unreachable(self, exc: Exception) -> ConfigError:
        return ConfigError(
            f"`llm_server_url` {self.url}: {type(exc).__name__}: {exc}; start the server or "
            "unset `llm_server_url` to run the model in-process"
        )

    def complete(
        self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] | None = None
    ) -> list[Completion]:
        """Greedy completions of `prompts`, in order."""
        answers = []
        for prompt in prompts:
            choice = self._create(prompt, max_tokens=max_tokens, stop=list(stop or []) or None)
            answers.append(Completion(choice.text or "", choice.finish_reason == "length"))
        return answers

    def first_token_logprobs(self, prompt: str, top: int = TOP_LOGPROBS) -> dict[str, float]:
        """Token text -> log-probability for the `top` likeliest first answer tokens."""
        choice = self._create(prompt, max_tokens=1, logprobs=top)
        if choice.logprobs is None or not choice.logprobs.top_logprobs:
            raise ConfigError(
                f"`llm_server_url` {self.url} returned no logprobs; the yes/no scorer needs a "
                "server that supports `logprobs` on /v1/completions (vLLM, llama.cpp)"
            )
        return dict(choice.logprobs.top_logprobs[0])
