"""Tests of the data-tour plot helpers in recbook.plots (long_tail, heatmap)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from recbook import plots


def test_long_tail_sorts_and_reports_zeros():
    ax = plots.long_tail([1, 10, 0, 5])
    x, y = ax.lines[0].get_data()
    assert list(y) == [10, 5, 1] and list(x) == [1, 2, 3]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "1 items with no interaction not shown" in ax.get_title()
    plt.close("all")


@pytest.mark.parametrize("bad", [[], [1, -1], [1.0, np.nan]])
def test_long_tail_bad_input(bad):
    with pytest.raises(ValueError, match="long_tail"):
        plots.long_tail(bad)


def test_heatmap_labels_and_symmetric_colours():
    frame = pd.DataFrame([[1.0, -3.0], [0.5, 2.0]], index=["a", "b"], columns=["x", "y"])
    ax = plots.heatmap(frame, title="t")
    image = ax.images[0]
    assert image.get_clim() == (-3.0, 3.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y"]
    plt.close("all")


def test_heatmap_empty_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        plots.heatmap(pd.DataFrame())
