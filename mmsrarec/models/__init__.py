"""Model loading: LLMs (text and vision-language) and sentence encoders.

- `presets.py`: where weights come from (packaged GGUF presets converted once into
  `<cache_dir>/models/<preset>`, Hugging Face ids, local folders).
- `llm.py`: `load_llm` -> `LLM` (model, tokenizer, processor, chat/vision flags), `ModelCache`.
- `embeddings.py`: `load_encoder` -> `SentenceEncoder`.
- `chroma_embedding.py`: `ChromaEmbedding`, an encoder as Chroma's embedding function
  (imported on first use: chromadb is slow to import and only the indexes need it).
"""

from typing import Any

from mmsrarec.models.embeddings import SentenceEncoder, load_encoder
from mmsrarec.models.llm import LLM, ModelCache, load_llm
from mmsrarec.models.presets import ENCODER_PRESETS, LLM_PRESETS

__all__ = [
    "ENCODER_PRESETS",
    "LLM",
    "LLM_PRESETS",
    "ChromaEmbedding",
    "ModelCache",
    "SentenceEncoder",
    "load_encoder",
    "load_llm",
]


def __getattr__(name: str) -> Any:
    if name == "ChromaEmbedding":
        from mmsrarec.models.chroma_embedding import ChromaEmbedding

        return ChromaEmbedding
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
