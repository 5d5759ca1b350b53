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
    """(escaped, unique key per row; rows that got a ``#k`` disambiguator)."""
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


def original_of(key: str, renamed: bool) -> str:
    """The token of a key read back; ``renamed`` if its row carries a ``#k`` disambiguator."""
    if renamed:
        key = key.rsplit("#", 1)[0]
    return unescape(key)
