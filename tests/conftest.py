"""Small rating tables shared by the privacy and DP-SGD tests; a private cache per test run."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch


def pytest_configure(config):
    """Derived caches (text embeddings, parse caches) of a test run, notebooks included, go to a
    fresh folder removed at exit, never the user's cache (``$RECBOOK_CACHE`` set by hand wins)."""
    if "RECBOOK_CACHE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="recbook-test-cache-")
        os.environ["RECBOOK_CACHE"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)


def make_tiny_ratings(n: int = 2000, n_users: int = 40, n_items: int = 30, seed: int = 0):
    """Ratings with user and item biases and noise, clipped to 1..5."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    bias_u, bias_i = rng.normal(0, 0.7, n_users), rng.normal(0, 0.7, n_items)
    r = np.clip(3.5 + bias_u[u] + bias_i[i] + rng.normal(0, 0.5, n), 1, 5)
    return pd.DataFrame({"user_id": u, "item_id": i, "rating": r})


def as_rating_tensors(df: pd.DataFrame) -> tuple[torch.Tensor, ...]:
    return (
        torch.tensor(df["user_id"].to_numpy()),
        torch.tensor(df["item_id"].to_numpy()),
        torch.tensor(df["rating"].to_numpy(), dtype=torch.float32),
    )


@pytest.fixture
def tiny_ratings():
    """Factory: ``tiny_ratings(n=..., seed=...)`` -> ratings DataFrame."""
    return make_tiny_ratings


@pytest.fixture
def rating_tensors():
    """``rating_tensors(df)`` -> (user, item, rating) tensors."""
    return as_rating_tensors


def pytest_collection_modifyitems(config, items):
    """Every notebook nbval collects carries the ``notebooks`` marker, so ``make check`` can
    leave them out with ``-m "not notebooks"``."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
