"""Serve the scripted chat (tests/chat_fakes.py) over HTTP on loopback, as a separate process:

    python tests/serve_tiny.py --data DATASET_DIR --encoder ENCODER_DIR --chroma DIR --port N

The catalog index lives in a persistent Chroma folder (`--chroma`), so other processes can
share it as `mmsrarec serve` and `mmsrarec chat` do. Used by tests and benchmarks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--chroma", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import chromadb
    import torch
    import uvicorn
    from chat_fakes import make_chat_context
    from chromadb.config import Settings as ChromaSettings

    from mmsrarec.chat.graph import ChatService
    from mmsrarec.config import Settings
    from mmsrarec.data import load_dataset
    from mmsrarec.graph.graph import open_checkpointer
    from mmsrarec.models import load_encoder
    from mmsrarec.web.app import create_app

    torch.set_num_threads(1)
    encoder = load_encoder(str(args.encoder), Settings(cache_dir=args.chroma.parent / "cache"))
    client = chromadb.PersistentClient(
        path=str(args.chroma), settings=ChromaSettings(anonymized_telemetry=False)
    )
    context = make_chat_context(load_dataset(args.data), encoder, client)
    app = create_app(ChatService(context, open_checkpointer(None)))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
