"""Timeline plot of a stream: one bar per segment coloured by song, join scores underneath."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path


def plot_timeline(cue: dict, path: str | Path) -> Path:
    """Draw the cue's segments (x: output time in s, colour: song) and join scores; save PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    segs = cue["segments"]
    songs = list(dict.fromkeys(s["song"] for s in segs))
    cmap = plt.get_cmap("tab20", max(len(songs), 1))
    colour = {s: cmap(i % 20) for i, s in enumerate(songs)}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 3.6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for s in segs:
        ax.broken_barh(
            [(s["output_start_s"], s["output_end_s"] - s["output_start_s"])],
            (0, 1),
            facecolors=colour[s["song"]],
            edgecolor="white",
            linewidth=0.3,
        )
    ax.set_yticks([])
    ax.set_title(f"{len(segs)} segments from {len(songs)} songs")
    handles = [matplotlib.patches.Patch(color=colour[s], label=s) for s in songs[:12]]
    ax.legend(handles=handles, fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.05), frameon=False)
    t = np.array([s["output_start_s"] for s in segs[1:]])
    sc = np.array([s["score"] for s in segs[1:]], dtype=float)
    ax2.plot(t, sc, ".", ms=3, color="k")
    ax2.set_ylabel("join score")
    ax2.set_xlabel("time (s)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
