"""The keyword summarizer: batched greedy generation with an LLM, images through a VLM.

    summarizer = LLMSummarizer(llm, vision_llm=vlm)          # vision_llm optional
    summarizer.summarize(items, feedback={})                 # {"1": ["toy story", ...]}

Text and image are summarized separately and their keywords interleaved (METHOD.md: so that
neither modality is ignored). Generation is greedy (reproducible, cacheable) with left
padding, and each row stops as soon as its answer is over: at a newline, or once a keyword
repeats, which is how a small model shows it has run out of things to say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from mmsrarec.data import Item
from mmsrarec.errors import DataError
from mmsrarec.models import LLM
from mmsrarec.models.server import CompletionServer
from mmsrarec.prompt_text import sanitize
from mmsrarec.summarization import prompts
from mmsrarec.summarization.parse import MAX_KEYWORDS, merge_keywords, parse_keywords
from mmsrarec.summarization.stopping import MAX_NEW_TOKENS, answered


class _StopWhenAnswered(StoppingCriteria):
    """Per row: stop once `stopping.answered` holds for the row's text (GRPO uses the same)."""

    def __init__(self, tokenizer: Any, prompt_length: int, max_keywords: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.max_keywords = max_keywords

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_length :], skip_special_tokens=True
        )
        done = [answered(text, self.max_keywords) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class LLMSummarizer:
    """Implements the `Summarizer` protocol with a (chat or base) language model.

    Args:
        llm: Summarizes item text. Chat models get `prompts.chat_messages` through their
            template; base models the few-shot `prompts.plain_prompt`.
        vision_llm: Summarizes item images (items whose `image` is set). Defaults to `llm`
            when that is a vision model; without one, images are ignored.
        max_new_tokens: Generation budget per answer; 8 keywords take about 30 tokens.
        batch_size: Prompts generated together.
        max_keywords: Keywords kept per item (text and image together).
        server: Generate the text answers on this OpenAI-compatible server instead of with
            `llm.model` (`llm` still renders the prompts); images stay in-process.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        vision_llm: LLM | None = None,
        max_new_tokens: int = MAX_NEW_TOKENS,
        batch_size: int = 8,
        max_keywords: int = MAX_KEYWORDS,
        server: CompletionServer | None = None,
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1 or max_keywords < 1:
            raise ValueError("max_new_tokens, batch_size and max_keywords must be at least 1")
        if vision_llm is not None and not vision_llm.is_vision:
            raise ValueError(f"`vision_llm` `{vision_llm.name}` is not a vision-language model")
        self.llm = llm
        self.vision_llm = vision_llm or (llm if llm.is_vision else None)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.max_keywords = max_keywords
        self.server = server
        text_name = server.name if server is not None else llm.name
        vision_name = self.vision_llm.name if self.vision_llm not in (None, llm) else None
        self.name = f"{text_name}+{vision_name}" if vision_name else text_name

    def prompt(self, item: Item, feedback: str | None = None) -> str:
        """The exact text prompt for `item` (after its chat template, if any)."""
        text = sanitize(item.text, prompts.MAX_ITEM_CHARS, self.llm.tokenizer)
        if self.llm.is_chat:
            return self.llm.render_prompt(prompts.chat_messages(text, feedback))
        return prompts.plain_prompt(text, feedback)

    def summarize(self, items: Sequence[Item], feedback: Mapping[str, str]) -> dict[str, list[str]]:
        """Keywords per item id (possibly fewer than 3, even none, for a weak model)."""
        texts = [self.prompt(item, feedback.get(item.item_id)) for item in items]
        answers = self._generate_all(self.llm, texts)
        result = {
            item.item_id: parse_keywords(answer, None)
            for item, answer in zip(items, answers, strict=True)
        }
        with_image = [item for item in items if item.image]
        if self.vision_llm is not None and with_image:
            image_keywords = self.summarize_images(with_image)
            for item in with_image:
                result[item.item_id] = merge_keywords(
                    result[item.item_id], image_keywords[item.item_id], self.max_keywords
                )
        return {key: keywords[: self.max_keywords] for key, keywords in result.items()}

    def summarize_images(self, items: Sequence[Item]) -> dict[str, list[str]]:
        """Keywords per item id from its image alone (items must have `image` set)."""
        vlm = self.vision_llm
        if vlm is None:
            raise ValueError("summarize_images needs a `vision_llm`")
        prompt = vlm.render_prompt(prompts.image_messages())
        keywords: dict[str, list[str]] = {}
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]  # images are opened per batch
            images = [_open_image(item) for item in batch]
            answers = self.generate(vlm, [prompt] * len(batch), images)
            for item, answer in zip(batch, answers, strict=True):
                keywords[item.item_id] = parse_keywords(answer, None)
        return keywords

    def _generate_all(self, llm: LLM, texts: list[str]) -> list[str]:
        if self.server is not None and llm is self.llm:
            done = self.server.complete(texts, self.max_new_tokens)
            return [_drop_cut_tail(c.text) if c.cut else c.text for c in done]
        answers: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            answers += self.generate(llm, texts[start : start + self.batch_size])
        return answers

    def generate(self, llm: LLM, texts: list[str], images: list[Any] | None = None) -> list[str]:
        """Greedy answers to prompts `texts` (with one image each when `images` is given).

        Rows are left-padded so that every answer starts right after its prompt. The answer
        of a row that ran out of tokens loses its last, probably cut-off, keyword.
        """
        if not texts:
            return []
        tokenizer = llm.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            if images is None:
                # Chat templates already hold BOS where the model wants one.
                inputs = tokenizer(
                    texts, return_tensors="pt", padding=True, add_special_tokens=not llm.is_chat
                )
            else:
                inputs = llm.processor(
                    text=texts, images=[[image] for image in images], return_tensors="pt",
                    padding=True,
                )  # fmt: skip
        finally:
            tokenizer.padding_side = side
        inputs = inputs.to(llm.model.device)
        prompt_length = inputs["input_ids"].shape[1]
        stop = _StopWhenAnswered(tokenizer, prompt_length, self.max_keywords)
        with torch.inference_mode():
            output = llm.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([stop]),
            )
        # [batch, generated]; special tokens kept so that the parser sees where turns end.
        texts = tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=False)
        specials = tokenizer.all_special_tokens
        answers = []
        for text in texts:
            ended = "\n" in text.lstrip() or any(token in text for token in specials)
            answers.append(text if ended else _drop_cut_tail(text))
        return answers


def _drop_cut_tail(text: str) -> str:
    """Text up to its last separator: the keyword after it was cut by the token budget."""
    last = max(text.rfind(","), text.rfind(";"))
    return text[:last] if last > 0 else text


def _open_image(item: Item) -> Any:
    from PIL import Image

    try:
        with Image.open(item.image) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(
            f"image `{item.image}` of item `{item.item_id}` cannot be read ({exc}); fix the "
            "path in the catalog or prepare the dataset again"
        ) from exc
