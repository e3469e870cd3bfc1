"""mmsrarec: LLM-based sequential recommendation as a LangGraph state machine."""

__version__ = "0.1.0"
