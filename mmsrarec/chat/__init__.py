"""Chat: free text in, recommendations that honour the request out.

- `state.py`: the chat graph's typed state (the conversation is the checkpointer thread);
- `context.py`: the parts the chat nodes call and the `ChatSettings`;
- `parse.py`: title mentions, series and answers to questions; `rules.py` + `lexicon.py`
  (every word rule): the rule-based reader of a message (negation scope, genres, wishes,
  refinements), with `years.py` (year phrases as typed intervals with a polarity),
  `spelling.py` (typo-tolerant lexicon matching) and `moods.py` (mood words -> genres by
  sentence embedding); `llm_intent.py`: the LLM's constrained-JSON reading (off by default);
- `intent.py`: the conversation's structured `Intent` and how a message updates it;
- `sqlcatalog.py`: item metadata in SQLite, the hard filter and the relaxation rule;
- `catalog.py`: the Chroma search over item titles and keywords (soft wishes);
- `nodes.py`: understand -> clarify | tools -> reply; `tools.py`: hard_filter, relax,
  soft_search, rank (the recommendation graph), final_filter; `replies.py`: reply text;
- `graph.py`: `build_chat_graph`, and `ChatService` (one lock, one checkpointer, threads);
- `factory.py`: `build_chat_context`, the default parts built from `Settings`.
"""
