"""What the shop's generator knows and a model can only estimate: :class:`ShopTruth`.

For each task a notebook measures, the truth scores the same (user, item) pairs a model
scores -- an "oracle" row on the model's own split and candidates:

* ``truth.expected_rating(u, i)`` -- E[rating], the best RMSE predictor;
* ``truth.click_probability(u, i)`` -- P(click | shown);
* ``truth.purchase_probability(u, i)`` -- P(purchase | shown) = P(click) * P(buy | click);
* ``truth.exposure_probability(u, i)`` -- P(an impression of user u shows item i);
* ``truth.interaction_probability(u, i, event)`` -- exposure * P(event | shown), the oracle
  score for top-k "which items will this user click / buy next";
* ``truth.score(task, u, i)`` and ``truth.oracle_scores(task)`` (a dense users x items matrix
  for full-catalogue ranking), ``task`` one of :data:`TASKS`.

The formulas here are the generator's (:mod:`recbook.datasets.shop.generator`) written once
more in closed form, for either regime (the misspecified shop's best-of-several-interests taste
through ``user_interests``, its saturating click through ``click_ceiling``);
``tests/test_shop.py`` checks, in both regimes, that they predict what the generator draws.
This module imports only :mod:`recbook.checks` from recbook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from recbook import checks

#: The task names :meth:`ShopTruth.score` and :meth:`ShopTruth.oracle_scores` understand.
TASKS = ("rating", "click", "purchase", "interaction-click", "interaction-purchase")


@dataclass
class ShopTruth:
    """What the generator knows and a model can only estimate: per-task oracles.

    ``user_factors``/``item_factors`` are the full-rank truth: each row concatenates the user's
    category preferences (scaled) with the latent taste, so that
    ``affinity = global_mean + user_bias + item_bias + user_factors @ item_factors.T``.

    With ``user_interests`` (users, interests, factors) -- the misspecified shop -- a user has
    several such rows and the affinity takes the best match instead:
    ``... + max_m user_interests[u, m] @ item_factors[i] - interest_offset``;
    ``user_factors`` is then the first interest, for code that wants one row per user (it is
    not the affinity's whole story). ``click_ceiling`` scales the click sigmoid (1: none).

    Every oracle is vectorised over aligned id arrays and checks its ids; score a model's split
    with the oracle of the same task to get the "oracle" row of a table.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    global_mean: float
    rating_noise_sd: float
    click_intercept: float
    click_slope: float
    buy_intercept: float
    buy_slope: float
    buy_price_slope: float
    item_log_price: np.ndarray  # log(price / category median price)
    category_probability: np.ndarray  # (users, categories): P(category | impression of user)
    item_category: np.ndarray
    item_popularity: np.ndarray  # within-category draw weight (not normalised)
    item_release_day: np.ndarray
    user_signup_day: np.ndarray
    n_days: int
    region_taste: pd.DataFrame
    cold_start_day: int
    user_interests: np.ndarray | None = None  # (users, interests, factors): best match wins
    interest_offset: float = 0.0  # subtracted from the best match (centres it)
    click_ceiling: float = 1.0  # P(click | shown) = click_ceiling * sigmoid(...)

    @property
    def n_users(self) -> int:
        return len(self.user_bias)

    @property
    def n_items(self) -> int:
        return len(self.item_bias)

    def _ids(self, user_ids: Any, item_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        u = checks.ids(user_ids, self.n_users, "user_ids")
        i = checks.ids(item_ids, self.n_items, "item_ids")
        checks.same_shape(u, i, "user_ids and item_ids")
        return u, i

    def affinity(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """Noise-free affinity ``x`` of each (user, item) pair."""
        return self._affinity(*self._ids(user_ids, item_ids))

    def expected_rating(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """E[rating | user, item]: the Bayes-optimal prediction under squared error."""
        return self._task("rating", *self._ids(user_ids, item_ids))

    def click_probability(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(click | the item is shown to the user): the oracle for click-through tasks."""
        return self._task("click", *self._ids(user_ids, item_ids))

    def purchase_probability(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(purchase | shown) = P(click | shown) * P(buy | click); the second factor falls
        with the item's price relative to its category's median."""
        return self._task("purchase", *self._ids(user_ids, item_ids))

    def rating_at_least(self, user_ids: Any, item_ids: Any, stars: int = 4) -> np.ndarray:
        """P(rating >= ``stars`` | the user rates the item): the oracle when relevance is
        "rated at least ``stars``" (e.g. 4 of 5)."""
        stars = checks.integer(stars, "stars", minimum=2)
        if stars > 5:
            raise ValueError(f"stars must be 2..5 (ratings are 1-5 stars), got {stars}")
        x = self._affinity(*self._ids(user_ids, item_ids))
        return ndtr((x - (stars - 0.5)) / self.rating_noise_sd)

    def exposure_probability(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(an impression of the user shows this item), exactly as the generator draws it.

        The generator picks a day uniformly from the user's sign-up to the end, a category
        from the user's preferences, then an item of that category by popularity among the
        items already released that day. Release days are handled: the probability averages
        over the user's days, so a late item counts only on the days it was on sale. Over
        all items it sums to 1 for every user.
        """
        return self._exposure(*self._ids(user_ids, item_ids))

    def interaction_probability(
        self, user_ids: Any, item_ids: Any, event: str = "click"
    ) -> np.ndarray:
        """P(the user's next impression is this item and ends in ``event``) =
        exposure * P(event | shown): the oracle score for "which items will this user click
        (``event="click"``; a purchase counts as a click) or buy next" -- top-k tasks."""
        checks.one_of(event, ("click", "purchase"), "event")
        return self._task(f"interaction-{event}", *self._ids(user_ids, item_ids))

    def score(self, task: str, user_ids: Any, item_ids: Any) -> np.ndarray:
        """The oracle of ``task`` (one of :data:`TASKS`) for each (user, item) pair."""
        checks.one_of(task, TASKS, "task")
        return self._task(task, *self._ids(user_ids, item_ids))

    def oracle_scores(
        self,
        task: str,
        n_users: int | None = None,
        n_items: int | None = None,
        *,
        from_day: int | np.ndarray | None = None,
    ) -> np.ndarray:
        """Dense (users x items) oracle scores for full-catalogue ranking, in the shape of
        :mod:`recbook.baselines`' scorers. ``n_users``/``n_items``, when given, must match
        the shop's sizes (a guard against scoring the wrong catalogue).

        ``from_day`` (one day, or one per user) restricts an ``interaction-*`` task to the
        impressions on or after that day -- the exact oracle for a test window that starts
        there (a temporal split's cut); without it exposure averages over the user's whole
        life, which is only a reference for a window."""
        checks.one_of(task, TASKS, "task")
        for given, actual, what in (
            (n_users, self.n_users, "n_users"),
            (n_items, self.n_items, "n_items"),
        ):
            if given is not None and checks.integer(given, what) != actual:
                raise ValueError(
                    f"{what}={given} but the shop has {actual}; pass the dataset's own sizes"
                )
        users = np.arange(self.n_users)[:, None]
        items = np.arange(self.n_items)[None, :]
        if from_day is None:
            return self._task(task, users, items)
        if not task.startswith("interaction"):
            raise ValueError(
                f"from_day restricts exposure: it needs an interaction task, not {task!r}"
            )
        start = self._window_start(from_day)
        scores = self._task(task.replace("interaction-", ""), users, items)
        return scores * self._exposure(users, items, start[:, None])

    # -- the formulas, on checked ids that are aligned 1-D arrays or a (users, 1) x (1, items)
    #    grid (the dense case multiplies the factor matrices instead of gathering rows)

    def _affinity(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        if self.user_interests is not None:
            dot = self._best_interest(u, i)
        elif u.ndim == 2:
            dot = self.user_factors[u[:, 0]] @ self.item_factors[i[0]].T
        else:
            dot = np.einsum("nk,nk->n", self.user_factors[u], self.item_factors[i])
        return self.global_mean + self.user_bias[u] + self.item_bias[i] + dot

    def _best_interest(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """max over the user's interests of interest . item factors, minus the offset; the
        dense case keeps one (users, items) block per interest, never all of them at once."""
        w = self.user_interests
        if u.ndim == 2:
            f = self.item_factors[i[0]].T
            best = w[u[:, 0], 0] @ f
            for m in range(1, w.shape[1]):
                np.maximum(best, w[u[:, 0], m] @ f, out=best)
        else:
            best = np.einsum("nmk,nk->nm", w[u], self.item_factors[i]).max(axis=1)
        return best - self.interest_offset

    def _task(self, task: str, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        x = self._affinity(u, i)
        if task == "rating":
            return _rating_mean(x, self.rating_noise_sd)
        x = x - self.global_mean
        p = expit(self.click_intercept + self.click_slope * x)
        if self.click_ceiling < 1:
            p *= self.click_ceiling
        if task.endswith("purchase"):
            p *= expit(
                self.buy_intercept
                + self.buy_slope * x
                - self.buy_price_slope * self.item_log_price[i]
            )
        if task.startswith("interaction"):
            p *= self._exposure(u, i)
        return p

    def _window_start(self, from_day: int | np.ndarray) -> np.ndarray:
        """Per-user first day of the window: ``from_day`` (one or per user), never before
        sign-up; a user whose window is empty (starts at or after the last day) is refused."""
        day = np.asarray(from_day)
        if day.ndim == 0:
            day = np.full(self.n_users, day)
        if day.shape != (self.n_users,) or not np.issubdtype(day.dtype, np.integer):
            raise ValueError(
                f"from_day must be one integer day or one per user ({self.n_users}), "
                f"got shape {day.shape} of {day.dtype}"
            )
        start = np.maximum(day, self.user_signup_day)
        if (start < 0).any() or (start >= self.n_days).any():
            raise ValueError(f"from_day must leave a window inside days 0..{self.n_days - 1}")
        return start

    def _exposure(
        self, u: np.ndarray, i: np.ndarray, start: np.ndarray | None = None
    ) -> np.ndarray:
        s = self.user_signup_day[u] if start is None else start
        first = np.maximum(s, self.item_release_day[i])
        cat = self.item_category[i]
        days_share = self._release_tail()[first, cat] / (self.n_days - s)
        return self.category_probability[u, cat] * self.item_popularity[i] * days_share

    def _release_tail(self) -> np.ndarray:
        """(n_days + 1, categories): sum over days d' >= d of 1 / (popularity mass of the
        category's items released by d'), the per-day normaliser of the item draw."""
        n_cat = self.category_probability.shape[1]
        mass = np.zeros((self.n_days, n_cat))
        day = np.minimum(self.item_release_day, self.n_days - 1)
        np.add.at(mass, (day, self.item_category), self.item_popularity)
        mass = np.cumsum(mass, axis=0)
        inv = np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0)
        tail = np.zeros((self.n_days + 1, n_cat))
        tail[:-1] = np.cumsum(inv[::-1], axis=0)[::-1]
        return tail


def _rating_mean(x: np.ndarray, sd: float) -> np.ndarray:
    """E[clip(round(x + N(0, sd)), 1, 5)], exactly: 1 + sum over k = 1..4 of P(rating > k)."""
    edges = np.array([1.5, 2.5, 3.5, 4.5]).reshape((4,) + (1,) * np.ndim(x))
    return 1.0 + ndtr((x - edges) / sd).sum(axis=0)
