"""Tiny models built from a config on the spot, so unit tests never download or load a real model.

Each builder writes a folder that `load_llm` / `load_encoder` load like any local path, in well
under a second. Weights are random (seeded): the models are for plumbing, not for quality.

- `build_tiny_causal_lm`: Llama, 2 layers, hidden 32, byte-level BPE tokenizer with a ChatML
  template; "yes" and "no" (with and without a leading space) are single tokens.
- `build_tiny_base_lm`: the same without a chat template.
- `build_tiny_vlm`: Idefics3 (the SmolVLM architecture) with a PIL image processor.
- `build_tiny_encoder`: BERT, 2 layers, hidden 32, WordPiece tokenizer.
- `build_tiny_gguf`: the causal LM written as an F32 GGUF file, to test preset conversion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    BertConfig,
    BertModel,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

CORPUS = [
    "yes no yes no Yes No",
    "no yes no yes",
    "Will the user like this movie? yes",
    "Will the user like this movie? no",
    "The user watched a space adventure film and a science fiction movie.",
    "A romantic comedy, a horror film, a documentary and an animated musical.",
    "Recommend the next item from the candidate list.",
    "The user liked the movie because of the story and the actors.",
    "system user assistant",
] * 4
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
# ChatML, like SmolLM2. Content may be a string or a list of {"type": "text"|"image"} parts (VLMs).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Idefics3's processor looks these up by name; row/col tokens are only used when it splits images.
IDEFICS3_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"] + [
    f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)
]
VLM_IMAGE_SIZE = 32  # pixels per side the vision tower sees
VLM_PATCH_SIZE = 8
VLM_SCALE_FACTOR = 2
# <image> tokens per image: (32 / 8)^2 patches, pixel-shuffled by 2x2 -> 4.
VLM_IMAGE_SEQ_LEN = (VLM_IMAGE_SIZE // VLM_PATCH_SIZE) ** 2 // VLM_SCALE_FACTOR**2


def build_tiny_tokenizer(
    chat_template: str | None = CHAT_TEMPLATE, extra_special: list[str] | None = None
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text encodes) trained on `CORPUS` in a few milliseconds."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS + (extra_special or []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
        chat_template=chat_template,
        model_max_length=256,
    )
    for word in ["yes", "no", " yes", " no"]:
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    return tokenizer


def _llama_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _save_lm(path: Path, tokenizer: PreTrainedTokenizerFast) -> Path:
    torch.manual_seed(0)
    model = LlamaForCausalLM(_llama_config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_causal_lm(path: Path) -> Path:
    """A 2-layer Llama chat model (random weights) with a ChatML template, saved to `path`."""
    return _save_lm(Path(path), build_tiny_tokenizer())


def build_tiny_base_lm(path: Path) -> Path:
    """The same model without a chat template: a base (completion) model."""
    return _save_lm(Path(path), build_tiny_tokenizer(chat_template=None))


def build_tiny_vlm(path: Path) -> Path:
    """A tiny Idefics3 (SmolVLM architecture) model and processor saved to `path`.

    Images are resized to 32x32 without splitting, so each image becomes 4 `<image>` tokens.
    The PIL image processor is used because torchvision is not installed.
    """
    path = Path(path)
    tokenizer = build_tiny_tokenizer(extra_special=IDEFICS3_TOKENS)
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": VLM_IMAGE_SIZE},
        max_image_size={"longest_edge": VLM_IMAGE_SIZE},
        do_image_splitting=False,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=VLM_IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )
    text_config = _llama_config(tokenizer)
    config = Idefics3Config(
        text_config=text_config.to_dict(),
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": VLM_IMAGE_SIZE,
            "patch_size": VLM_PATCH_SIZE,
        },
        scale_factor=VLM_SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_encoder(path: Path) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer, saved to `path`."""
    path = Path(path)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=specials, show_progress=False
    )
    backend.train_from_iterator(CORPUS, trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_gguf(path: Path) -> Path:
    """The tiny chat model as an F32 llama GGUF file (the format the presets ship in).

    Tensors are random: only names and shapes matter for `transformers` to read it back.
    """
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = _llama_config(tokenizer)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    special = set(tokenizer.all_special_tokens)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t, _ in vocab]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(0)
    hidden, inner = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (hidden // config.num_attention_heads)

    def add(name: str, *shape: int) -> None:
        # ggml stores dimensions reversed; GGUFWriter takes the array in row-major (torch) order.
        writer.add_tensor(name, (0.02 * rng.standard_normal(shape)).astype(np.float32))

    add("token_embd.weight", config.vocab_size, hidden)
    writer.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    for i in range(config.num_hidden_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        add(f"blk.{i}.attn_q.weight", hidden, hidden)
        add(f"blk.{i}.attn_k.weight", kv, hidden)
        add(f"blk.{i}.attn_v.weight", kv, hidden)
        add(f"blk.{i}.attn_output.weight", hidden, hidden)
        add(f"blk.{i}.ffn_gate.weight", inner, hidden)
        add(f"blk.{i}.ffn_up.weight", inner, hidden)
        add(f"blk.{i}.ffn_down.weight", hidden, inner)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
