"""One progress callback for every long loop; the CLI shows it with Rich, the server forwards it.

A callback is called as ``progress(stage, done, total)`` with ``total=None`` when unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Optional

ProgressCallback = Callable[[str, int, Optional[int]], None]


def null_progress(stage: str, done: int, total: int | None) -> None:
    """The default: report nothing."""


@contextmanager
def rich_progress(transient: bool = False) -> Iterator[ProgressCallback]:
    """Yield a callback that draws one Rich bar (with ETA) per stage."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=transient) as bar:
        tasks: dict[str, int] = {}

        def callback(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield callback
