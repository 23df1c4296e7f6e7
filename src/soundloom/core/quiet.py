"""Keep Lightning's chatter out of a user's terminal while training; our own progress bar stays.

Lightning prints banners ("GPU available: ...", "💡 Tip: ...", "`Trainer.fit` stopped: ...") through
its loggers at info level, and a few warnings that say nothing the user can act on. Real warnings
from Lightning and every error still come through.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")

# Messages (regular expressions, matched from the start) of warnings that are noise for a user.
NOISE = (
    # Lightning's own pytree copy on a newer torch: nothing to do for us or the user.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # Resuming writes into the run's checkpoint folder on purpose (last.ckpt is ours).
    r"Checkpoint directory .* exists and is not empty",
    # The data loaders read a memory-mapped store; worker processes rarely pay off on one machine.
    r"The '\w+_dataloader' does not have many workers",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Within the block, Lightning logs only warnings and errors and the :data:`NOISE` warnings are dropped."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
