"""Token treatment for word2vec files (deterministic and reversible).

gensim's word2vec reader splits on a single space, strips trailing ASCII whitespace, drops
a leading newline in binary files and decodes strict UTF-8, and keeps only the first of
duplicate keys. embconv therefore writes each token as follows (``escape``):

1. Percent-encoding: ``%``, every whitespace character (``str.isspace``: space, tab, newline,
   CR, VT, FF, U+0085, U+00A0, U+2028 …), every control character (U+0000–U+001F,
   U+007F–U+009F) and every lone surrogate (invalid Unicode) is replaced by its UTF-8 bytes
   (``surrogatepass``) written as ``%XX`` with upper-case hex. ``"new york"`` → ``new%20york``,
   ``"50%"`` → ``50%25``.
2. The empty token is written as a single ``%`` (never produced by rule 1, which always puts
   two hex digits after ``%``).
3. Duplicates (e.g. fastai's repeated ``xxfake`` padding): the first row keeps its key; each
   later row gets ``<key>#<k>`` with the smallest k >= 2 such that the key is used by no other
   row (so a real token ``xxfake#2`` keeps its key and the duplicate becomes ``xxfake#3``).
   The rows so renamed are listed in the sidecar manifest (see word2vec.py).

``unescape`` undoes 1 and 2; the sidecar undoes 3.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_NEEDS = re.compile(r"[%\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_PCT = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _encode_char(m: re.Match) -> str:
    return "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogatepass"))


def escape(token: str) -> str:
    """The key written for ``token`` (rules 1 and 2)."""
    if token == "":
        return "%"
    if _NEEDS.search(token) is None:
        return token
    return _NEEDS.sub(_encode_char, token)


def escape_all(tokens: list[str]) -> list[str]:
    """:func:`escape` of each token; one regex scan of the lot when none needs escaping."""
    if "" not in tokens and _NEEDS.search("".join(tokens)) is None:
        return list(tokens)
    return [escape(t) for t in tokens]


def _decode_run(m: re.Match) -> str:
    raw = bytes.fromhex(m.group(0).replace("%", ""))
    return raw.decode("utf-8", "surrogatepass")


def unescape(key: str) -> str:
    """The token a key stands for (inverse of :func:`escape`)."""
    if key == "%":
        return ""
    if "%" not in key:
        return key
    return _PCT.sub(_decode_run, key)


def unique_keys(strings: list[str]) -> tuple[list[str], list[int]]:
    """(escaped, unique key per row; rows that got a ``#k`` disambiguator): rule 3 as plainly
    as it can be written. The writer uses :func:`renamed_keys`, which gives the same keys
    without holding them all; tests check one against the other."""
    keys = [escape(s) for s in strings]
    taken = set(keys)
    if len(taken) == len(keys):
        return keys, []
    seen: set[str] = set()
    renamed: list[int] = []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            continue
        n = 2
        while f"{k}#{n}" in taken:
            n += 1
        keys[i] = f"{k}#{n}"
        taken.add(keys[i])
        seen.add(keys[i])
        renamed.append(i)
    return keys, renamed


_hash = hash  # str hashes: 64-bit, salted per process (tests swap in a colliding one)


def renamed_keys(strings: Sequence[str], chunk: int = 1 << 16) -> dict[int, str]:
    """The rows that get a ``#k`` disambiguator and their keys — what :func:`unique_keys`
    renames — without holding every key: one pass hashes each escaped key into 8 bytes; only
    rows whose hash is shared are fetched again and compared exactly (a hash collision costs
    a look, never a wrong key). Memory: 16 bytes a row (24 where keys repeat)."""
    n = len(strings)
    hashes = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk):
        block = strings[start : start + chunk]
        hashes[start : start + len(block)] = np.fromiter(map(_hash, escape_all(list(block))), dtype=np.int64,
                                                         count=len(block))
    by_hash = np.sort(hashes)
    shared = by_hash[1:][by_hash[1:] == by_hash[:-1]]
    if not shared.size:  # the usual case: 16 bytes a row at the peak
        return {}
    order = np.argsort(hashes, kind="stable")
    rows = np.flatnonzero(np.isin(hashes, shared)).tolist()  # the only rows that may repeat a key
    key_of: dict[int, str] = {}
    for start in sorted({r - r % chunk for r in rows}):
        block = strings[start : start + chunk]
        for r in rows:
            if start <= r < start + chunk:
                key_of[r] = escape(block[r - start])

    def is_original_key(k: str) -> bool:
        h = _hash(k)
        lo, hi = np.searchsorted(by_hash, h, "left"), np.searchsorted(by_hash, h, "right")
        return any(escape(strings[int(r)]) == k for r in order[lo:hi])

    seen: set[str] = set()
    assigned: set[str] = set()
    renamed: dict[int, str] = {}
    for r in rows:
        k = key_of[r]
        if k not in seen:
            seen.add(k)
            continue
        n = 2
        while f"{k}#{n}" in assigned or is_original_key(f"{k}#{n}"):
            n += 1
        renamed[r] = f"{k}#{n}"
        assigned.add(renamed[r])
    return renamed


def original_of(key: str, renamed: bool) -> str:
    """The token of a key read back; ``renamed`` if its row carries a ``#k`` disambiguator."""
    if renamed:
        key = key.rsplit("#", 1)[0]
    return unescape(key)
