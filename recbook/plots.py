"""Small, consistent matplotlib figures (<= 100 dpi so notebooks stay light)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

DPI = 100


def setup() -> None:
    """Notebook-wide defaults: small figures at 100 dpi, inline PNG."""
    matplotlib.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "figure.figsize": (5.5, 3.4),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def learning_curves(frame: pd.DataFrame, ax=None, title: str = "learning curves"):
    """Plot every ``*loss`` column of a fit history against the epoch."""
    columns = [c for c in frame.columns if str(c).endswith("loss")]
    if not columns:
        raise ValueError(f"no '*loss' column to plot; columns are {list(frame.columns)}")
    if ax is None:
        _, ax = plt.subplots()
    frame[columns].plot(ax=ax, marker=".")
    ax.set_xlabel(frame.index.name or "epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    return ax


# --- data tour: long tails and heatmaps ------------------------------------------------------


def long_tail(counts, ax=None, title: str = "popularity long tail", label: str | None = None):
    """Interactions per item against the item's popularity rank, on log-log axes.

    A Zipf-like catalogue is close to a straight line there; the slope shows how few items
    take most of the traffic, which is what a popularity baseline exploits.
    """
    import numpy as np

    values = np.sort(np.asarray(counts, dtype=float).ravel())[::-1]
    if values.size == 0:
        raise ValueError("long_tail: no counts to plot")
    if (values < 0).any() or np.isnan(values).any():
        raise ValueError("long_tail: counts must be non-negative numbers without NaN")
    zeros = int((values == 0).sum())
    values = values[values > 0]  # a log axis cannot show zero: say how many were left out
    if ax is None:
        _, ax = plt.subplots()
    ax.loglog(np.arange(1, values.size + 1), values, marker=".", linestyle="none", label=label)
    ax.set_xlabel("item rank by popularity")
    ax.set_ylabel("interactions")
    ax.set_title(title + (f"\n({zeros} items with no interaction not shown)" if zeros else ""))
    return ax


def heatmap(frame: pd.DataFrame, ax=None, title: str = "", cmap: str = "RdBu_r", center=0.0):
    """A labelled heatmap of a small DataFrame (rows x columns), coloured around ``center``."""
    import numpy as np

    if frame.empty:
        raise ValueError("heatmap: the DataFrame is empty")
    values = frame.to_numpy(dtype=float)
    if ax is None:
        _, ax = plt.subplots()
    if center is None:
        image = ax.imshow(values, cmap=cmap, aspect="auto")
    else:
        span = float(np.nanmax(np.abs(values - center))) or 1.0
        image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=center - span, vmax=center + span)
    ax.set_xticks(range(frame.shape[1]), [str(c) for c in frame.columns], rotation=60, ha="right")
    ax.set_yticks(range(frame.shape[0]), [str(i) for i in frame.index])
    ax.grid(False)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax
