"""ER-ACE (Caccia et al., "New Insights on Reducing Abrupt Representation Change in Online
Continual Learning", ICLR 2022): experience replay with an asymmetric cross-entropy.

The buffer, its budget and its settings are ER's (the ``er`` section). Only the current
samples' loss changes: their cross-entropy is taken over the classes of the task in
flight, so new images never push an old class's logit down, while the replayed samples
keep the cross-entropy over every class seen and alone draw the old/new boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from binplay.config import ClassifierConfig
from binplay.strategies.base import CurrentInputs
from binplay.strategies.er import ReplayBufferStrategy

if TYPE_CHECKING:
    from binplay.engine import TaskRun


class ErAceStrategy(ReplayBufferStrategy):
    name = "er_ace"

    def classifier_config(self) -> ClassifierConfig:
        # The default loss's asymmetric cross-entropy, over the new classes on every current row.
        return super().classifier_config().model_copy(update={"current_loss_classes": "new"})

    def loss_inputs(self, run: TaskRun, current: CurrentInputs) -> dict[str, Any]:
        return {"old": run.seen(include_current=False)}
