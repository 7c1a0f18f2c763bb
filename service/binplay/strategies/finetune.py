"""Fine-tuning: the classifier learns each task alone, with nothing kept of the past.

The lower bound every method is measured against; its behaviour is the base ``Strategy``'s.
"""

from __future__ import annotations

from binplay.strategies.base import Strategy


class FinetuneStrategy(Strategy):
    """Fine-tuning (the base class's behaviour): the lower bound."""

    bound = True
