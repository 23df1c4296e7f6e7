"""A training budget in CPU time, which does not depend on how busy the machine is.

A wall-clock budget (``--max-minutes``) buys fewer steps on a shared machine; ``--cpu-minutes`` buys the same
work wherever it runs. CPU time is the process's own (all threads) plus its children's (data-loader workers:
those already reaped, from ``getrusage``, and those still alive, from ``/proc`` on Linux). A second stage
(``prior`` over a ``vqvae``, ``vaegan`` from a ``cvae``) inherits its first stage's recorded CPU time, so one
budget covers every stage. With DDP the budget is each process's (the run records the first process's time).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import torch

from ...core.cputime import process_cpu_seconds
from ..runfiles import CONFIG_FILE

__all__ = ["CpuClock", "process_cpu_seconds", "recorded_cpu_seconds"]


def recorded_cpu_seconds(run_dir: str | os.PathLike) -> float:
    """Training CPU seconds a finished run recorded in its ``model.json``, every stage included (0 if none)."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        training = json.loads(path.read_text()).get("training", {})
        return float(training.get("cpu_s_total", training.get("cpu_s", 0.0)))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


class CpuClock(L.Callback):
    """Counts the training's CPU seconds (kept in checkpoints, so a resumed run goes on counting) and stops
    training once ``inherited_s`` + own reaches ``budget_s`` (no budget: it only counts).

    ``reason`` says why training stopped early (None when it did not).
    """

    def __init__(self, budget_s: float | None, inherited_s: float = 0.0, live_children: bool = False) -> None:
        self.budget_s, self.inherited_s, self.live_children = budget_s, inherited_s, live_children
        self.before_s = 0.0  # spent by earlier processes of this run (restored from the checkpoint)
        self.start_s = process_cpu_seconds(live_children)
        self.reason: str | None = None

    def own_seconds(self) -> float:
        """CPU seconds this run has spent so far, earlier processes (resume) included."""
        return self.before_s + process_cpu_seconds(self.live_children) - self.start_s

    def state_dict(self) -> dict:
        return {"cpu_s": self.own_seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before_s = float(state_dict.get("cpu_s", 0.0))
        self.start_s = process_cpu_seconds(self.live_children)

    def _check(self, trainer: L.Trainer) -> None:
        if self.budget_s is None or trainer.should_stop:
            return
        spent = self.inherited_s + self.own_seconds()
        if trainer.world_size > 1:
            # DDP: each process has the budget, and all take the same decision, that of the one furthest on (a
            # process that stopped alone would leave the others waiting in their next all-reduce).
            mine = torch.tensor(spent, dtype=torch.float64, device=trainer.strategy.root_device)
            spent = float(trainer.strategy.reduce(mine, reduce_op="max"))
        if spent >= self.budget_s:
            trainer.should_stop = True
            self.reason = (
                f"CPU budget spent: {spent:.1f} of {self.budget_s:.1f} CPU-s"
                + (f" ({self.inherited_s:.1f} by the first stage)" if self.inherited_s else "")
                + f" at step {trainer.global_step}"
            )

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._check(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._check(trainer)

    def record(self, trainer: L.Trainer) -> dict:
        """What ``model.json`` keeps under ``"training"``."""
        own = self.own_seconds()
        return {
            "cpu_s": round(own, 2),
            "cpu_s_inherited": round(self.inherited_s, 2),
            "cpu_s_total": round(own + self.inherited_s, 2),
            "cpu_budget_s": None if self.budget_s is None else round(self.budget_s, 2),
            "steps": int(trainer.global_step),
            "epochs": int(trainer.current_epoch),
            "stopped": self.reason,
        }
