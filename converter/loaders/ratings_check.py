"""Checking rebuilt collab labels against the ratings they were trained on (spec §11.3).

Sizes can prove a labelling wrong, never right. A collab model (a dot model — every fastai
generation's EmbeddingDotBias scores ``user · item + user bias + item bias`` — or an EmbeddingNN,
run forward in numpy by ``forward.py``) trained under the right labels
scores its training rows in step with their ratings; under shuffled labels the correlation is about
0. The figures go into the vocabulary's source, so inspect and every output show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import EmbeddingModel, EmbeddingTable
from .forward import tabular_forward

MIN_SHUFFLES, MAX_SHUFFLES = 20, 200  # more where they are cheap: small data has a wide shuffled spread
SHUFFLE_BUDGET = 200_000_000  # multiply-adds spent on shuffles, at most
MAX_ROWS = 1_000_000  # a deterministic sample beyond this: the figures settle long before
MIN_CORRELATION = 0.1
MIN_SIGMAS = 3.0
MIN_OWN_FRACTION = 0.6  # right labels of the fixtures and real models: 95–97 %; wrong seeds: 22–37 %


@dataclass(frozen=True)
class RatingsCheck:
    """``correlation``: Pearson's r between the model's scores and the ratings on ``rows``
    training rows; ``shuffled_mean`` / ``shuffled_sd`` / ``shuffled_max``: the same under
    ``shuffles`` random relabellings of both tables."""

    correlation: float
    shuffled_mean: float
    shuffled_sd: float
    shuffled_max: float
    rows: int
    shuffles: int
    shifted_max: float  # the best r with one table's labels moved one row up or down
    own_fraction: float = 1.0  # rows whose own vector fits their ratings better than their 4 neighbours'

    @property
    def beats_chance(self) -> bool:
        """Far better than chance: r ≥ 0.1, above every shuffled labelling and ≥ 3 standard
        deviations above their mean."""
        return (self.correlation >= MIN_CORRELATION and self.correlation > self.shuffled_max
                and self.correlation >= self.shuffled_mean + MIN_SIGMAS * max(self.shuffled_sd, 1e-3))

    @property
    def fits_rows(self) -> bool:
        """Row by row: a wrong split that still fits the sizes labels runs of rows off by one or
        two, which beats chance but leaves those rows fitting a neighbour's ratings better than
        their own (and a table moved by one row fitting better overall). At least
        ``MIN_OWN_FRACTION`` of the rows must fit their own ratings best. Meaningful where
        neighbouring labels are unrelated (ids); ordered ones such as years have similar
        neighbours, which is why this is asked only where sizes prove nothing."""
        return self.own_fraction >= MIN_OWN_FRACTION and self.correlation > self.shifted_max

    @property
    def passed(self) -> bool:
        return self.beats_chance and self.fits_rows

    def __str__(self) -> str:
        return (f"r={self.correlation:.3f} between the model's scores and the ratings on {self.rows:,} training rows; "
                f"shuffled labels: {self.shuffled_mean:.3f} ± {self.shuffled_sd:.3f}, max {self.shuffled_max:.3f} "
                f"over {self.shuffles} shuffles; labels moved by one row: {self.shifted_max:.3f} at best; "
                f"{self.own_fraction:.0%} of rows fit their own ratings better than their neighbours'")


def check_ratings(model: EmbeddingModel, tables: Sequence[EmbeddingTable], rebuilt: Sequence[Any], frame: Any,
                  train_rows: np.ndarray, columns: Sequence[str], rating: str) -> RatingsCheck | None:
    """The check for a collab model's (user, item) ``tables`` labelled by ``rebuilt``
    (``generations.Rebuilt``), on the ``train_rows`` of ``frame``; None when the ratings are not
    numbers or the model's layers cannot be run."""
    import pandas as pd

    if rating not in frame.columns:
        return None
    scorer = _scorer(model, tables)
    if scorer is None:
        return None
    score, cost = scorer
    train = frame.iloc[train_rows]
    ratings = pd.to_numeric(train[rating], errors="coerce").to_numpy(dtype=np.float64)
    codes = [_rows(r, train[c], t) for r, c, t in zip(rebuilt, columns, tables)]
    keep = np.isfinite(ratings) & (codes[0] >= 0) & (codes[1] >= 0)
    if keep.sum() < 3:
        return None
    ratings, u, i = ratings[keep], codes[0][keep], codes[1][keep]
    if len(ratings) > MAX_ROWS:
        pick = np.sort(np.random.RandomState(0).choice(len(ratings), MAX_ROWS, replace=False))
        ratings, u, i = ratings[pick], u[pick], i[pick]
    user, item = tables
    r = _correlation(score(u, i), ratings)
    rng = np.random.RandomState(0)
    shuffled = []
    shuffles = int(np.clip(SHUFFLE_BUDGET // max(1, len(u) * cost), MIN_SHUFFLES, MAX_SHUFFLES))
    for _ in range(shuffles):
        pu, pi = rng.permutation(user.rows), rng.permutation(item.rows)
        shuffled.append(_correlation(score(pu[u], pi[i]), ratings))
    s = np.asarray(shuffled)
    shifted = []
    for which, table in ((0, user), (1, item)):
        first = 1 if rebuilt[which].offset else 0  # the #na# row stays put
        for step in (1, -1):
            moved = np.arange(table.rows)
            moved[first:] = np.roll(moved[first:], step)
            su, si = (moved[u], i) if which == 0 else (u, moved[i])
            shifted.append(_correlation(score(su, si), ratings))
    own = [_own_fraction(score, tables[which].rows, u, i, ratings, which, rebuilt[which].offset) for which in (0, 1)]
    return RatingsCheck(r, float(s.mean()), float(s.std()), float(s.max()), len(ratings), shuffles, max(shifted),
                        min(own))


Scorer = Any  # (user rows, item rows) -> scores


def _scorer(model: EmbeddingModel, tables: Sequence[EmbeddingTable]) -> tuple[Scorer, int] | None:
    """(the model's score of (user row, item row) pairs, multiply-adds per pair)."""
    user, item = tables
    uw, iw = np.asarray(user.weight, dtype=np.float32), np.asarray(item.weight, dtype=np.float32)
    if model.model.kind == "collab-dot":
        ub = np.asarray(user.bias, dtype=np.float32) if user.bias is not None else np.zeros(user.rows, np.float32)
        ib = np.asarray(item.bias, dtype=np.float32) if item.bias is not None else np.zeros(item.rows, np.float32)

        def dot(u: np.ndarray, i: np.ndarray) -> np.ndarray:
            return _chunked(lambda uu, ii: np.einsum("ij,ij->i", uw[uu], iw[ii], dtype=np.float64) + ub[uu] + ib[ii],
                            u, i, uw.shape[1])
        return dot, uw.shape[1]
    forward = tabular_forward(model, tables)
    if forward is None:
        return None
    linear = next(m for m in forward.layers if m.kind == "linear")
    if linear.params["weight"].shape[1] != uw.shape[1] + iw.shape[1]:
        return None
    cost = sum(m.params["weight"].size for m in forward.layers if m.kind == "linear")

    def net(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return _chunked(lambda uu, ii: forward(np.concatenate([uw[uu], iw[ii]], axis=1))[:, 0].astype(np.float64),
                        u, i, uw.shape[1] + iw.shape[1])
    return net, cost


def _chunked(f: Any, u: np.ndarray, i: np.ndarray, width: int) -> np.ndarray:
    out = np.empty(len(u), dtype=np.float64)
    step = max(1, (1 << 22) // max(1, width))  # bounded memory: ~16 MiB of gathered rows at a time
    for a in range(0, len(u), step):
        out[a:a + step] = f(u[a:a + step], i[a:a + step])
    return out


def _own_fraction(score: Scorer, rows: int, u: np.ndarray, i: np.ndarray, ratings: np.ndarray, which: int,
                  first: int) -> float:
    """Of one table's rows with training ratings, the fraction whose own vector predicts them with
    less squared error (after the best affine fit of scores to ratings) than the vectors of the rows
    1 and 2 above and below: a labelling off by a row or two somewhere fails there."""
    codes = u if which == 0 else i

    def sse(moved: np.ndarray) -> np.ndarray:
        su, si = (moved[u], i) if which == 0 else (u, moved[i])
        x = score(su, si)
        a, b = np.polyfit(x, ratings, 1) if x.std() > 0 else (0.0, ratings.mean())
        return np.bincount(codes, weights=(ratings - (a * x + b)) ** 2, minlength=rows)
    ident = np.arange(rows)
    own = sse(ident)
    best_other = np.full(rows, np.inf)
    for step in (1, -1, 2, -2):
        moved = ident.copy()
        moved[first:] = np.roll(ident[first:], step)
        best_other = np.minimum(best_other, sse(moved))
    has = np.bincount(codes, minlength=rows) > 0
    has[:first] = False
    return float((own[has] < best_other[has]).mean()) if has.any() else 1.0


def _rows(rebuilt: Any, values: Any, table: EmbeddingTable) -> np.ndarray:
    """Each training value's row in the table (-1 for a value with none)."""
    codes = np.asarray(rebuilt.categories.get_indexer(values.astype(object)), dtype=np.int64)
    rows = codes + rebuilt.offset
    unknown = rebuilt.vocab.unknown_index
    rows[codes < 0] = unknown if unknown is not None else -1
    rows[rows >= table.rows] = -1
    return rows


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    sx, sy = x.std(), y.std()
    if not (sx > 0 and sy > 0):
        return 0.0
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))
