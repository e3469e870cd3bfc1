"""The graph's nodes, one small function each over `RecommendationState`.

In pipeline order: `history.load_user`, `summarizer.summarize`, `critic.critique` (with its
router `after_critique`), `retrieval.retrieve`, `recommender.recommend`.
"""
