"""A `SentenceEncoder` as a Chroma embedding function (kept apart: importing chromadb is slow
and only the Chroma indexes need it).

    collection = client.create_collection("items", embedding_function=ChromaEmbedding(encoder))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from mmsrarec.config import Settings
from mmsrarec.models.embeddings import SentenceEncoder, load_encoder


@register_embedding_function
class ChromaEmbedding(EmbeddingFunction[Documents]):
    """A `SentenceEncoder` as a Chroma embedding function (chromadb 1.5 protocol).

    Chroma stores `name()` and `get_config()` with a collection; `build_from_config` gives back
    an instance that loads the encoder on its first call, so reopening a collection loads no
    model until something is embedded. Pass the same instance to `get_collection`: its default
    would otherwise be Chroma's own ONNX model, which it would try to download.
    """

    def __init__(self, encoder: SentenceEncoder) -> None:
        self._encoder: SentenceEncoder | None = encoder
        spec = encoder.name
        # A relative path would not find the model again from another working directory.
        self._spec = str(encoder.source) if Path(spec).expanduser().is_dir() else spec

    def __call__(self, input: Documents) -> Embeddings:
        if self._encoder is None:
            self._encoder = load_encoder(self._spec, Settings())
        return list(self._encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "mmsrarec-sentence-encoder"

    def get_config(self) -> dict[str, Any]:
        return {"model": self._spec}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbedding:
        instance = ChromaEmbedding.__new__(ChromaEmbedding)
        instance._encoder = None
        instance._spec = str(config["model"])
        return instance

    def is_legacy(self) -> bool:
        # The inherited check builds a second instance from the config; ours would load a model.
        return False

    def default_space(self) -> Space:
        return "cosine"  # rows are unit length: cosine, inner product and L2 rank alike

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        if new_config.get("model", old_config.get("model")) != old_config.get("model"):
            raise ValueError(
                "a collection cannot change its embedding model; re-embed into a new collection"
            )
