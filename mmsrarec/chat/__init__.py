"""Chat: free text in, recommendations with keyword explanations out.

- `state.py`: the chat graph's typed state (the conversation is the checkpointer thread);
- `context.py`: the parts the chat nodes call and the `ChatSettings`;
- `parse.py`: pure text helpers (title mentions, "not X", content words, answers to questions);
- `catalog.py`: the Chroma search over item titles and keywords;
- `nodes.py`: understand -> clarify | rank -> reply;
- `graph.py`: `build_chat_graph`, and `ChatService` (one lock, one checkpointer, threads);
- `factory.py`: `build_chat_context`, the default parts built from `Settings`.
"""
