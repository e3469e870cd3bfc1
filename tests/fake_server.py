"""The web app as its own process, wired as `mmsrarec serve` wires it (settings from the
environment, conversations in `open_checkpointer(settings, "chat")`, sessions in
`SessionStore.from_settings`, the catalog in `chroma_client(..., settings.chroma_url)`), with
the scripted parts of `chat_fakes` in place of the packaged models:

    MMSRAREC_RUN_DIR=... MMSRAREC_DATA_DIR=... MMSRAREC_DATASET=tiny \
    MMSRAREC_TEST_ENCODER=<tiny encoder dir> [MMSRAREC_DATABASE_URL=...] \
    [MMSRAREC_CHROMA_URL=...] python -m uvicorn --factory fake_server:app --port P

Used by the tests that stop and start servers (restarts, replicas) and by
`benchmarks/replicas.py`.
"""

from __future__ import annotations

import os

from fastapi import FastAPI


def app() -> FastAPI:
    import torch

    torch.set_num_threads(1)
    from chat_fakes import make_chat_context

    from mmsrarec.chat.graph import ChatService
    from mmsrarec.config import apply_offline_env, load_settings
    from mmsrarec.data import load_dataset
    from mmsrarec.database import open_checkpointer
    from mmsrarec.models import load_encoder
    from mmsrarec.tools.index import chroma_client
    from mmsrarec.web.app import create_app
    from mmsrarec.web.sessions import SessionStore

    settings = load_settings()
    apply_offline_env(settings)
    dataset = load_dataset(settings.dataset_dir)
    encoder = load_encoder(os.environ["MMSRAREC_TEST_ENCODER"], settings)
    client = chroma_client(settings.dataset_dir / "chroma", settings.chroma_url)
    service = ChatService(
        make_chat_context(dataset, encoder, client), open_checkpointer(settings, "chat")
    )
    return create_app(service, SessionStore.from_settings(settings))
