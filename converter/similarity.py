"""Nearest rows of an embedding table by cosine similarity (``EmbeddingTable.most_similar``,
``embconv similar``).

One pass over the weight, a chunk of rows at a time (``EmbeddingTable.row_chunks``: a
memory-mapped table is read, never copied whole), in float32: each chunk's dot products with the
unit query (one matrix-vector product) divided by the chunk rows' norms — the cosine of each row —
and a running top k kept with ``np.partition`` (the k best, plus every row within float32's
rounding bound of the k-th). Those few candidates are then scored again in float64, so the rows
returned, their order and their similarities are those of an exact cosine (what a float64
brute force gives). No Python loop runs over rows.

Rules (the same for the library and the CLI):

* a query is a token (matched by its string form through ``Vocabulary.index``, so ``"42"`` finds
  the int 42; the first row wins on duplicates) or a vector of ``dim`` numbers;
* an unknown token is a KeyError naming the table — the unknown (``#na#``) row is never used in
  its place;
* the unknown row and, for a token query, the query's own row are left out of the results (other
  rows that share the query's label, such as fastai's ``xxfake`` padding, are not);
* best first; equal similarities keep row order (the lower row first);
* a row whose norm is zero (and every row, for a zero query) has similarity 0, never NaN; a row
  with a NaN or infinite value ranks last and reports NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    from .ir import EmbeddingTable

# Bytes of float32 rows per chunk (8,192 rows of 128): measured fastest at 2–4 MiB on a 1M × 128
# table (bench/bench_similar.py); numpy's per-call cost is noise at that size.
CHUNK_BYTES = 4 << 20


class Neighbour(NamedTuple):
    """One result: the ``row``, its ``token`` (string form; the row number for an unlabelled
    table) and its cosine ``similarity`` (a Python float in [-1, 1], or NaN for a non-finite row)."""

    row: int
    token: Any
    similarity: float


def is_vector(query: Any) -> bool:
    """True when ``query`` is a vector (ndarray, list or tuple), False for a token (a scalar)."""
    return isinstance(query, (np.ndarray, list, tuple))


def query_row(table: EmbeddingTable, token: Any) -> int:
    """The row of ``token`` in ``table`` (by string form). KeyError naming the table for a table
    without vocabulary or a token it does not hold (never the unknown row instead)."""
    if table.vocab is None:
        raise KeyError(f"table {table.name!r} has no vocabulary: query it by vector")
    row = table.vocab.index(token)
    if row is None:
        raise KeyError(f"{token_label(token)!r} is not in table {table.name!r}")
    return row


def token_label(token: Any) -> str:
    from .ir import token_string

    return token_string(token)


def parse_token(table: EmbeddingTable, text: str) -> int:
    """The CLI's TOKEN argument as a row of ``table``: tokens are matched by their string form
    (``"42"`` finds the int 42, ``"True"`` the bool True). UsageError (exit 2) naming the table
    when it has no vocabulary or no such token."""
    try:
        return query_row(table, text)
    except KeyError as e:
        if table.vocab is None:
            raise UsageError(f"table {table.name!r} has no vocabulary, so it cannot be searched by token") from None
        raise UsageError(f"no token {text!r} in table {table.name!r} ({len(table.vocab):,} tokens); "
                         f"tokens are matched by their string form, as `embconv inspect` lists them") from e


def _unit_query(table: EmbeddingTable, query: Any) -> tuple[np.ndarray, int | None]:
    """(the query as a float64 unit vector — zeros for a zero query —, the query's row or None)."""
    row: int | None = None
    if is_vector(query):
        q = np.asarray(query, dtype=np.float64)
        if q.ndim != 1 or q.shape[0] != table.dim:
            raise ValueError(f"table {table.name!r} has dim {table.dim}; the query vector has shape {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError("the query vector has NaN or infinite values")
    else:
        row = query_row(table, query)
        q = np.asarray(table.weight_rows(row, row + 1), dtype=np.float64).reshape(-1)
    norm = float(np.sqrt(q @ q))
    unit = q / norm if norm > 0 and np.isfinite(norm) else np.zeros_like(q)
    return unit, row


def _kth_best(sims: np.ndarray, k: int) -> float:
    """The k-th largest value of ``sims`` (len(sims) >= k >= 1)."""
    return float(np.partition(sims, len(sims) - k)[len(sims) - k])


def _cosines64(table: EmbeddingTable, rows: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """float64 cosine of ``rows`` (sorted) with the unit query; 0 for zero rows, -inf for non-finite."""
    if len(rows) <= 1024:
        pieces = [np.asarray(table.weight_rows(r, r + 1), dtype=np.float64).reshape(1, -1) for r in rows.tolist()]
        w = np.concatenate(pieces) if pieces else np.empty((0, table.dim))
    else:  # many candidates: one more pass, picking them out chunk by chunk
        parts = []
        for start, chunk in table.row_chunks(_chunk_rows(table)):
            lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
            if hi > lo:
                parts.append(np.asarray(chunk, dtype=np.float64).reshape(len(chunk), -1)[rows[lo:hi] - start])
        w = np.concatenate(parts)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", w, w))
        sims = np.zeros(len(w))
        np.divide(w @ unit, norms, out=sims, where=norms > 0)
    sims[~(np.isfinite(sims) & np.isfinite(norms))] = -np.inf
    return sims


def _chunk_rows(table: EmbeddingTable) -> int:
    return max(1024, CHUNK_BYTES // (4 * max(1, table.dim)))


def nearest(table: EmbeddingTable, query: Any, k: int = 10, *, chunk_rows: int | None = None) -> list[Neighbour]:
    """The ``k`` rows of ``table`` nearest to ``query`` (a token or a vector) by cosine, best
    first, as ``Neighbour(row, token, similarity)`` (see the module's rules).

    The pass over the table is float32; it keeps the k best rows and every row within the float32
    rounding bound of the k-th, and those few candidates are scored again in float64, so the rows,
    their order and their similarities are those of an exact cosine."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    unit, qrow = _unit_query(table, query)
    unknown = table.vocab.unknown_index if table.vocab is not None else None
    excluded = np.array(sorted({r for r in (unknown, qrow) if r is not None and 0 <= r < table.rows}), dtype=np.int64)
    k = min(int(k), table.rows - len(excluded))
    if k <= 0:
        return []
    unit32 = unit.astype(np.float32)
    # |float32 cosine - exact| <= ~(dim + 4) * 2**-24 (Cauchy-Schwarz bounds the dot's rounding); twice that.
    delta = 2.0 * (table.dim + 4) * 2.0**-24
    cap = 4 * k + 4096  # candidates kept at most (a mass of near-equal rows, e.g. many zero rows)
    cand_rows = np.empty(0, dtype=np.int64)
    cand_sims = np.empty(0, dtype=np.float32)
    floor = -np.inf  # a row below it can no longer be among the k best
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for start, chunk in table.row_chunks(chunk_rows or _chunk_rows(table)):
            w = np.asarray(chunk, dtype=np.float32)
            if w.ndim != 2:
                w = w.reshape(len(w), -1)
            norms = np.sqrt(np.einsum("ij,ij->i", w, w))
            sims = np.zeros(len(w), dtype=np.float32)
            np.divide(w @ unit32, norms, out=sims, where=norms > 0)
            sims[~(np.isfinite(sims) & np.isfinite(norms))] = -np.inf  # NaN/inf values: last, reported NaN
            keep = sims >= floor
            lo, hi = np.searchsorted(excluded, [start, start + len(w)])
            keep[excluded[lo:hi] - start] = False
            picked = np.flatnonzero(keep)
            if len(picked) > k:  # cut this chunk to its k best (and those within delta) first
                picked = picked[sims[picked] >= _kth_best(sims[picked], k) - delta]
            cand_rows = np.concatenate((cand_rows, picked + start))
            cand_sims = np.concatenate((cand_sims, sims[picked]))
            if len(cand_sims) >= k:
                floor = max(floor, _kth_best(cand_sims, k) - delta)
                near = cand_sims >= floor
                cand_rows, cand_sims = cand_rows[near], cand_sims[near]
            if len(cand_sims) > cap:
                order = np.lexsort((cand_rows, -cand_sims))[:cap]
                cand_rows, cand_sims = cand_rows[order], cand_sims[order]
    rows = np.sort(cand_rows)
    exact = _cosines64(table, rows, unit)
    best = np.lexsort((rows, -exact))[:k]
    best_rows, best_sims = rows[best], exact[best]
    labels = _labels(table, best_rows)
    scores = np.where(np.isneginf(best_sims), np.nan, np.clip(best_sims, -1.0, 1.0)).tolist()
    return [Neighbour(int(r), lab, float(s)) for r, lab, s in zip(best_rows.tolist(), labels, scores)]


def _labels(table: EmbeddingTable, rows: np.ndarray) -> Sequence[Any]:
    if table.vocab is None:
        return rows.tolist()
    strings = table.vocab.strings
    return [strings[r] for r in rows.tolist()]


def most_similar(table: EmbeddingTable, query: Any, k: int = 10) -> list[tuple[Any, float]]:
    """``[(token, similarity), …]``: the ``k`` rows nearest to ``query`` by cosine, best first;
    ``token`` is the row's string form (the row number for an unlabelled table), ``similarity``
    a Python float. ``query`` is a token (KeyError naming the table when it is not in the
    vocabulary) or a vector of ``table.dim`` numbers (ValueError otherwise)."""
    return [(n.token, n.similarity) for n in nearest(table, query, k)]


__all__ = ["Neighbour", "is_vector", "most_similar", "nearest", "parse_token", "query_row"]
