"""``cnn-lstm``: the seed's binary pair classifier, kept faithful so it can be compared.

Input: the end of A joined to the start of B, mono, peak-normalised, downsampled by 35 (every 35th
sample: ~315 Hz of bandwidth at 22050 Hz). Layers as the seed's Keras model: Conv1D(1024, k=2) ->
MaxPool(2) -> LSTM(256, return sequences) -> Dense(256) -> Dropout(0.25) -> Flatten -> Dense(1,
sigmoid). Trained with RMSprop and binary cross-entropy. It cannot embed: every candidate pair
must run through the whole network, which is what the benchmarks compare against.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import TransitionScorer
from .registry import TrainContext, register


class CnnLstmScorer(TransitionScorer):
    """The seed classifier. ``score_pairs`` returns the logit (sigmoid of it = P(B follows A)).

    Args:
        sample_rate: Hz.
        side_s: seconds of A's end and of B's start (each).
        downsample: keep every n-th sample (the seed: 35).
        filters, lstm, dense: layer widths (seed: 1024, 256, 256); smaller only for tests.
    """

    name = "cnn-lstm"
    embeds = False

    def __init__(
        self,
        sample_rate: int = 22050,
        side_s: float = 1.0,
        downsample: int = 35,
        filters: int = 1024,
        lstm: int = 256,
        dense: int = 256,
        dropout: float = 0.25,
    ):
        n = int(round(side_s * sample_rate))
        super().__init__(sample_rate, n, n)
        self.side_s, self.downsample, self.filters, self.lstm_size, self.dense_size, self.dropout_p = (
            side_s,
            downsample,
            filters,
            lstm,
            dense,
            dropout,
        )
        steps = (2 * n + downsample - 1) // downsample
        pooled = (steps - 1) // 2
        self.conv = nn.Conv1d(1, filters, kernel_size=2)
        self.pool = nn.MaxPool1d(2)
        self.lstm = nn.LSTM(filters, lstm, batch_first=True)
        self.dense = nn.Linear(lstm, dense)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(pooled * dense, 1)

    def config(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "side_s": self.side_s,
            "downsample": self.downsample,
            "filters": self.filters,
            "lstm": self.lstm_size,
            "dense": self.dense_size,
            "dropout": self.dropout_p,
        }

    def prepare(self, tails: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """Joined, peak-normalised, downsampled input ``(B, 1, steps)``."""
        x = torch.cat([self.fit_tails(tails), self.fit_heads(heads)], 1)
        x = x / x.abs().amax(1, keepdim=True).clamp_min(1e-6)
        return x[:, None, :: self.downsample]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` of prepared input ``(B, 1, steps)``."""
        h = self.pool(torch.relu(self.conv(x))).transpose(1, 2)
        h, _ = self.lstm(h)
        h = self.dropout(torch.relu(self.dense(h)))
        return self.out(h.flatten(1)).squeeze(1)

    def score_pairs(self, tails: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        return self(self.prepare(tails, heads))


def _train(scorer: CnnLstmScorer, ctx: TrainContext) -> dict:
    from .training import train_cnnlstm

    return train_cnnlstm(
        scorer,
        ctx.catalog,
        ctx.audio,
        ctx.split,
        ctx.max_minutes,
        ctx.seed,
        progress=ctx.progress,
        cpu_minutes=ctx.cpu_minutes,
    )


register(CnnLstmScorer, train=_train, cli_options={"side_s": "side_s"})
