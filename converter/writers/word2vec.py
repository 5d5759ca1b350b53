"""word2vec text (``.vec``/``.txt``) and binary (``.bin``) writers and readers.

One file per table (word2vec holds one matrix). Text: a header line ``rows dim``, then per
row ``key v1 … vd`` separated by single spaces, each value the shortest decimal that reads
back to the same float32 (see _floatfmt.py). Binary (gensim's layout): the same header line,
then per row the key's UTF-8 bytes, one 0x20 byte and ``dim`` little-endian float32 values, no
newline. gensim 4.4 ``KeyedVectors.load_word2vec_format`` loads both with exact values, one
unique key per row and no warnings.

Keys are the vocabulary's tokens with the treatment of tokens.py (percent-encoding of ``%``,
whitespace, control characters and invalid Unicode; ``%`` for the empty token; ``#k``
disambiguators for duplicates). A table without a vocabulary is written with its row numbers
as keys. ``drop_unknown=True`` leaves out the unknown (``#na#``) row. Biases are not written
(word2vec has no place for them). Only float32 is written.

Sidecar: word2vec has no metadata, so each file ``F`` gets ``F.manifest.json``::

    {"embconv.manifest": <the manifest of this one table, tokens omitted>,
     "embconv.word2vec": {"layout": 1, "format": "word2vec-text" | "word2vec-binary",
                          "table": "<name>", "escaping": "percent-1",
                          "row_labels": false,        # true: keys are row numbers (no vocabulary)
                          "dropped_rows": [0],        # source rows left out (drop_unknown)
                          "renamed_rows": [5, 6]}}    # source rows whose key got a #k suffix

``read`` uses the sidecar to give back the original tokens; without one it returns the keys
as they are (a word2vec file embconv did not write).
"""

from __future__ import annotations

import json
import mmap
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..chunks import output_dtype, weight_chunks
from ..errors import OutputError, ResourceLimitError, UnreadableInputError, UsageError
from ..ir import EmbeddingModel, EmbeddingTable, SourceInfo, Vocabulary
from ..lazy import ChunkedStrings, WithoutRow
from . import tokens as tok
from ._common import ProgressCounter, check_manifest, model_from_output, parse_json
from ._floatfmt import iter_lines
from .registry import Format, Progress, register

TEXT = "word2vec-text"
BINARY = "word2vec-binary"
SIDECAR_SUFFIX = ".manifest.json"
MAX_SIDECAR = 64 << 20  # bytes: a sidecar holds the manifest without tokens

_TASK_VALUES = 1 << 18  # values parsed at a time on read-back (text is ~10× bigger)


def sidecar_path(path: Path) -> Path:
    """Where the sidecar manifest of a word2vec file lives."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _single(model: EmbeddingModel) -> EmbeddingTable:
    if len(model.tables) != 1:
        raise UsageError("a word2vec file holds exactly one table")
    return next(iter(model.tables.values()))


class _Keys:
    """The word2vec key of every written row, made a chunk at a time (escaped token, or the
    ``#k`` key of a renamed duplicate), so no list of all keys is ever held."""

    def __init__(self, t: EmbeddingTable, drop_unknown: bool) -> None:
        if t.vocab is not None:
            if len(t.vocab) != t.rows:
                raise OutputError(f"table {t.name!r}: vocabulary has {len(t.vocab)} tokens, weight {t.rows} rows")
            strings: Any = t.vocab.strings
            unk = t.vocab.unknown_index
        else:  # row numbers: unique, nothing to escape
            strings = ChunkedStrings(t.rows, lambda a, b: [str(i) for i in range(a, b)])
            unk = None
        self.dropped: list[int] = [unk] if (drop_unknown and unk is not None) else []
        self.strings = WithoutRow(strings, self.dropped[0]) if self.dropped else strings
        self.rows = len(self.strings)
        self.renamed_keys = tok.renamed_keys(self.strings) if t.vocab is not None else {}
        # renamed rows as the source numbers them (the sidecar's "renamed_rows")
        self.renamed = sorted(i + (1 if self.dropped and i >= self.dropped[0] else 0) for i in self.renamed_keys)

    def encoded(self, start: int, stop: int) -> list[bytes]:
        """The UTF-8 keys of written rows ``start:stop``."""
        keys = tok.escape_all(list(self.strings[start:stop]))
        if self.renamed_keys:
            for r, key in self.renamed_keys.items():
                if start <= r < stop:
                    keys[r - start] = key
        return [k.encode("utf-8") for k in keys]


def write(model: EmbeddingModel, path: Path, *, binary: bool, dtype: str = "float32",
          progress: Progress | None = None, drop_unknown: bool = False, **options: Any) -> None:
    """Write the single table of ``model`` to ``path`` and its sidecar ``path.manifest.json``.
    Rows stream from the source a chunk at a time; keys are encoded per chunk."""
    if dtype != "float32":
        raise UsageError(f"word2vec files hold float32 only (asked for {dtype})")
    t = _single(model)
    if t.dim < 1:
        raise OutputError(f"table {t.name!r} has dimension 0; word2vec cannot hold it", path=str(path))
    out = output_dtype("float32")
    keys = _Keys(t, drop_unknown)
    n_rows, dropped, renamed = keys.rows, keys.dropped, keys.renamed
    counter = ProgressCounter(t.rows, progress)
    drop_at = dropped[0] if dropped else None
    with open(path, "wb", buffering=1 << 20) as f:
        f.write(f"{n_rows} {t.dim}\n".encode())
        written = 0
        for start, chunk in weight_chunks(t, out, budget=4 << 20):
            if drop_at is not None and start <= drop_at < start + len(chunk):
                chunk = np.delete(chunk, drop_at - start, axis=0)
            ks = keys.encoded(written, written + len(chunk))
            if binary:
                f.write(b"".join(k + b" " + r.tobytes() for k, r in zip(ks, chunk, strict=True)))
            else:
                for block in iter_lines(ks, chunk):
                    f.write(block)
            written += len(chunk)
            counter.add(len(chunk) + (len(dropped) if start == 0 else 0))
        if written != n_rows:
            raise OutputError(f"table {t.name!r}: wrote {written} rows, expected {n_rows}", path=str(path))
    side = {
        "embconv.manifest": model.manifest(include_tokens=False),
        "embconv.word2vec": {"layout": 1, "format": BINARY if binary else TEXT, "table": t.name,
                             "escaping": "percent-1", "row_labels": t.vocab is None,
                             "dropped_rows": dropped, "renamed_rows": renamed},
    }
    sidecar_path(path).write_text(json.dumps(side, ensure_ascii=False, indent=1), encoding="utf-8")


_MAX_DIGITS = 19  # a count or dimension of more digits would not fit in int64


def _header_line(head: bytes) -> bool:
    """True if ``head`` starts with a word2vec header line ``rows dim``."""
    line = head.split(b"\n", 1)[0]
    parts = line.split()
    return len(parts) == 2 and all(p.isdigit() and len(p) <= _MAX_DIGITS for p in parts) and b"\n" in head


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _first_row_is_text(head: bytes) -> bool:
    """True if the row after the header line is ``key v1 … v<dim>`` in decimal text."""
    first, _, rest = head.partition(b"\n")
    dim = int(first.split()[1])
    sp = rest.find(b" ")
    body = rest[sp + 1 :] if sp >= 0 else b""
    line = body.split(b"\n", 1)[0]
    try:
        values = line.decode("utf-8").split(" ")
    except UnicodeDecodeError:
        return False
    return len(values) == dim and all(_is_float(v) for v in values)


def sniff_text(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) looks like a word2vec text file."""
    return _header_line(head) and _first_row_is_text(head)


def sniff_binary(head: bytes) -> bool:
    """True if ``head`` looks like a word2vec binary file: the header line, then no text row."""
    return _header_line(head) and not _first_row_is_text(head)


def holds(model: EmbeddingModel, opts: dict) -> EmbeddingModel:
    """What a word2vec file holds of ``model``: no biases, and without the unknown row when
    written with ``drop_unknown``."""
    views = OrderedDict()
    for name, t in model.tables.items():
        unk = t.vocab.unknown_index if t.vocab is not None else None
        views[name] = t.view(bias=False, drop_row=unk if opts.get("drop_unknown") else None)
    return EmbeddingModel(views, model.source, model.model, list(model.warnings))


def options_of(path: Path) -> dict:
    """The write options a word2vec file records in its sidecar (``drop_unknown``)."""
    side = read_sidecar(path)
    info = side.get("embconv.word2vec") if isinstance(side, dict) else None
    return {"drop_unknown": isinstance(info, dict) and bool(info.get("dropped_rows"))}


def read_sidecar(path: Path) -> dict | None:
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        if side.stat().st_size > MAX_SIDECAR:
            raise ResourceLimitError(f"sidecar {side.name} is above the {MAX_SIDECAR >> 20} MiB limit "
                                     f"(embconv writes a few KiB)", path=str(path))
        raw = side.read_bytes()
    except OSError as e:
        raise UnreadableInputError(f"sidecar {side.name} is unreadable: {e.strerror or e}", path=str(path)) from e
    return parse_json(raw, path, f"sidecar {side.name}")


_SCAN = 16 << 20
_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
# _POP_TOP[b, r]: set bits among the first r of byte b (np.packbits puts the first bit at the top)
_POP_TOP = np.array([[bin(b >> (8 - r)).count("1") if r else 0 for r in range(8)] for b in range(256)],
                    dtype=np.int64)


def _spaces_per_line(a: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """How many b" " bytes each line ``a[rel[i]:rel[i+1]]`` holds: bits packed 8 to a byte, a
    running count per byte, and the bits of the byte each line starts in (~3× faster than
    np.add.reduceat on the bytes)."""
    packed = np.packbits(a == 32)
    packed = np.append(packed, np.uint8(0))  # for an offset at the very end
    cum = np.zeros(packed.size + 1, dtype=np.int64)
    np.cumsum(_POP8[packed], out=cum[1:])
    q, r = rel >> 3, rel & 7
    return np.diff(cum[q] + _POP_TOP[packed[q], r])


def _parse_text(data: bytes, rel: np.ndarray, dim: int) -> np.ndarray | None:
    """The float32 rows of the text lines ``data[rel[i]:rel[i+1]]`` (each ending in b"\\n"),
    parsed like gensim (decimal → nearest float64 → float32); None where a line is not plainly
    ``key v1 … v<dim>`` (the caller's exact path then parses it or names the bad row).

    Fast: the keys are blanked out in place (np.fromstring skips any whitespace) instead of
    cutting every line at its first space and joining the rest."""
    n = rel.size - 1
    a = np.frombuffer(data, dtype=np.uint8)
    counts = _spaces_per_line(a, rel)
    off = np.flatnonzero(counts != dim)
    # One space more is fine where it ends the line (the original C tool's files).
    if off.size and not ((counts[off] == dim + 1) & (a[rel[off + 1] - 2] == 32)).all():
        return None
    find = data.find
    starts = rel[:-1]
    key_len = np.array([find(b" ", i) for i in starts.tolist()], dtype=np.int64) - starts
    buf = bytearray(data)
    total = int(key_len.sum())
    if total:
        b = np.frombuffer(buf, dtype=np.uint8)
        b[np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(key_len) - key_len), key_len)] = 32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            body = bytes(buf)
            vals = np.fromstring(body, dtype=np.float64, sep=" ")  # noqa: NPY201 - text mode
        except (ValueError, DeprecationWarning):
            return None
    if vals.size != n * dim or (vals.size == 1 and not body.strip()):  # (blanks alone give [-1.])
        return None
    return vals.astype(np.float32).reshape(n, dim)


def _parse_lines(lines: list[bytes], dim: int) -> np.ndarray | None:
    """The plain parse of text lines ``key v1 … v<dim>`` (as gensim reads them: each value to
    float64, then float32): every line cut at its first space, the values joined and parsed with
    one np.fromstring. None where a line does not hold ``dim`` values or a value does not parse."""
    if any(len(line.rstrip().split(b" ")) != dim + 1 for line in lines):
        return None
    body = b" ".join(line.split(b" ", 1)[1] if b" " in line else b"" for line in lines)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            vals = np.fromstring(body, dtype=np.float64, sep=" ")  # noqa: NPY201 - text mode
        except (ValueError, DeprecationWarning):
            return None
    if vals.size != len(lines) * dim or (vals.size == 1 and not body.strip()):  # blanks alone give [-1.]
        return None
    return vals.astype(np.float32).reshape(-1, dim)


class _LazyRows:
    """The matrix of a word2vec file, parsed on demand: ``rows(start, stop)`` reads and parses
    just those rows (what verification does, chunk by chunk), ``to_numpy()`` all of them.
    Reading the file once at open records where every row starts (8 bytes a row, plus 8 for
    where each binary key ends), so memory stays bounded by a chunk whatever the file's size.
    Text values are parsed the way gensim parses them (to float64, then rounded to float32)."""

    def __init__(self, path: Path, binary: bool, n: int, dim: int, starts: np.ndarray,
                 key_ends: np.ndarray | None) -> None:
        self.path, self.binary, self.dim = path, binary, dim
        self.shape = (n, dim)
        self.dtype = np.dtype(np.float32)
        self.starts = starts  # n + 1 byte offsets: row i is [starts[i], starts[i+1])
        self.key_ends = key_ends  # binary: offset of the space after each key
        self.unterminated = False  # text: the last line has no newline

    def _binary_key_ends(self) -> np.ndarray:
        if self.key_ends is None:
            raise TypeError("a text file's rows have no key ends")
        return self.key_ends

    def _bytes(self, start: int, stop: int) -> tuple[bytes, int]:
        lo, hi = int(self.starts[start]), int(self.starts[stop])
        with open(self.path, "rb") as f:
            f.seek(lo)
            data = f.read(hi - lo)
        if len(data) == hi - lo - 1 and stop == self.shape[0] and self.unterminated:
            data += b"\n"  # the last line lacked its newline
        if len(data) != hi - lo:
            raise UnreadableInputError("the file changed while it was read", path=str(self.path))
        return data, lo

    def lines(self, start: int, stop: int, data: bytes | None = None) -> list[bytes]:
        if data is None:
            data, _ = self._bytes(start, stop)
        out = data.split(b"\n")
        if len(out) == stop - start + 1 and out[-1] == b"":
            out.pop()
        if len(out) != stop - start:
            raise UnreadableInputError(f"rows {start}-{stop - 1} do not split into lines", path=str(self.path))
        return out

    def keys(self, start: int, stop: int) -> list[str]:
        if stop <= start:
            return []
        sub = max(1, (1 << 18) // max(1, self.dim))  # whole lines are read: keep that bounded
        if stop - start > sub:
            out: list[str] = []
            for s in range(start, stop, sub):
                out += self.keys(s, min(stop, s + sub))
            return out
        if self.binary:
            data, lo = self._bytes(start, stop)
            begins, ends = self.starts[start:stop] - lo, self._binary_key_ends()[start:stop] - lo
            return [data[a:b].decode("utf-8").lstrip("\n") for a, b in zip(begins.tolist(), ends.tolist())]
        data, lo = self._bytes(start, stop)
        if data[-1:] != b"\n" or np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10) != stop - start:
            self.lines(start, stop, data)  # raises: the lines are not where the index says
        # Each key is its line up to the first space: sliced out of the block (splitting the
        # lines copied every line twice).
        find = data.find
        ends = (self.starts[start + 1 : stop + 1] - lo - 1).tolist()  # the newlines
        return [data[a : (sp if (sp := find(b" ", a, b)) >= 0 else b)].decode("utf-8")
                for a, b in zip((self.starts[start:stop] - lo).tolist(), ends)]

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop, _ = slice(start, stop).indices(self.shape[0])
        if stop <= start:
            return np.empty((0, self.dim), dtype=np.float32)
        sub = max(1, _TASK_VALUES // max(1, self.dim))  # parse ~256K values at a time: text is ~10× bigger
        if stop - start <= sub:
            return self._rows(start, stop)
        out = np.empty((stop - start, self.dim), dtype=np.float32)
        for s in range(start, stop, sub):
            e = min(stop, s + sub)
            out[s - start : e - start] = self._rows(s, e)
        return out

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) parsed in this process (a chunk of bounded size)."""
        dim = self.dim
        if self.binary:
            data, lo = self._bytes(start, stop)
            offs = (self._binary_key_ends()[start:stop] + 1 - lo).tolist()
            w = 4 * dim
            return np.frombuffer(b"".join(data[o : o + w] for o in offs), dtype="<f4").reshape(-1, dim).copy()
        data, lo = self._bytes(start, stop)
        if dim:
            fast = _parse_text(data, self.starts[start : stop + 1] - lo, dim)
            if fast is not None:
                return fast
        # The plain path, and where it fails, the row that makes it fail.
        lines = self.lines(start, stop, data)
        vals = _parse_lines(lines, dim)
        if vals is not None:
            return vals
        for i, line in enumerate(lines):  # name the first bad row
            parts = line.rstrip().split(b" ")
            if len(parts) != dim + 1:
                raise UnreadableInputError(f"row {start + i} has {len(parts) - 1} values, expected {dim}",
                                           path=str(self.path))
            try:
                np.array([float(p) for p in parts[1:]])
            except ValueError as e:
                raise UnreadableInputError(f"row {start + i}: {e}", path=str(self.path)) from None
        raise UnreadableInputError(f"rows {start}-{stop - 1} do not parse", path=str(self.path))

    def to_numpy(self) -> np.ndarray:
        return self.rows(0, self.shape[0])


def _header(f: Any, path: Path, size: int, binary: bool) -> tuple[int, int, int]:
    """(rows, dim, length of the header line): two decimal numbers of at most 19 digits; in a
    binary file, no more rows than the bytes after the header can hold (a row is at least a space
    and ``dim`` float32 values), since the binary index is sized by the count, so a damaged count
    never sizes it. (The text index grows with the lines it finds: a short text file is told by
    "file ends after i of n rows".)"""
    line = f.readline(64)
    header = line.split()
    if len(header) != 2 or not line.endswith(b"\n") or not all(h.isdigit() and len(h) <= _MAX_DIGITS
                                                                 for h in header):
        raise UnreadableInputError("word2vec header must be 'rows dim'", path=str(path))
    n, dim = int(header[0]), int(header[1])
    if max(n, 1) * max(dim, 1) * 4 > (1 << 63) - 1:  # numpy refuses such a shape, even with 0 rows
        raise UnreadableInputError(f"the header's {n} rows of {dim} values overflow int64", path=str(path))
    room = size - len(line)
    if binary and n * (1 + 4 * dim) > room:
        raise UnreadableInputError(f"the header promises {n} rows of {dim} values; the {room} bytes after it "
                                   f"cannot hold them", path=str(path))
    return n, dim, len(line)


def _index_text(path: Path) -> _LazyRows:
    """One pass over a text file in 16 MB blocks: the byte offset of every line (numpy)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        n, dim, pos = _header(f, path, size, binary=False)
        found: list[np.ndarray] = [np.array([pos], dtype=np.int64)]
        count = 0
        buf = bytearray(_SCAN)
        while count < n:
            got = f.readinto(buf)
            if not got:
                break
            nl = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8, count=got) == 10).astype(np.int64)
            nl += pos + 1
            found.append(nl[: n - count])
            count += min(len(nl), n - count)
            pos += got
    starts = np.concatenate(found)
    if count < n:
        if count == n - 1 and size > int(starts[-1]):  # the last line lacks its newline
            starts = np.append(starts, size + 1)
            lazy = _LazyRows(path, False, n, dim, starts, None)
            lazy.unterminated = True
            return lazy
        raise UnreadableInputError(f"file ends after {count} of {n} rows", path=str(path))
    return _LazyRows(path, False, n, dim, starts, None)


def _index_binary(path: Path) -> _LazyRows:
    """One pass over a binary file: where every row starts and where its key ends."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        n, dim, pos = _header(f, path, len(mm), binary=True)
        starts = np.empty(n + 1, dtype=np.int64)
        key_ends = np.empty(n, dtype=np.int64)
        released = 0
        for i in range(n):
            sp = mm.find(b" ", pos)
            if sp < 0 or sp + 1 + 4 * dim > len(mm):
                raise UnreadableInputError(f"file ends after {i} of {n} rows", path=str(path))
            starts[i], key_ends[i] = pos, sp
            pos = sp + 1 + 4 * dim
            if pos - released > _SCAN and hasattr(mmap, "MADV_DONTNEED"):  # keep RSS bounded
                upto = pos - pos % mmap.PAGESIZE
                mm.madvise(mmap.MADV_DONTNEED, released, upto - released)
                released = upto
        starts[n] = pos
    return _LazyRows(path, True, n, dim, starts, key_ends)


def read(path: Path, *, binary: bool) -> EmbeddingModel:
    """Read a word2vec file (and its sidecar, where there is one) into a one-table model. The
    weights and keys stay in the file and are parsed on demand, chunk by chunk."""
    try:
        lazy = _index_binary(path) if binary else _index_text(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnreadableInputError(f"not a readable word2vec file: {e}", path=str(path)) from e
    n = lazy.shape[0]

    def checked(fetch: Any) -> Any:
        def run(start: int, stop: int) -> list[str]:
            try:
                return fetch(start, stop)
            except UnicodeDecodeError as e:
                raise UnreadableInputError(f"not a readable word2vec file: {e}", path=str(path)) from e
        return run

    side = read_sidecar(path)
    container = BINARY if binary else TEXT
    if side is None:
        name = path.stem
        table = EmbeddingTable(name=name, role="token", weight_source=lazy,
                               vocab=Vocabulary(ChunkedStrings(n, checked(lazy.keys))), weight_key=name)
        return EmbeddingModel(OrderedDict([(name, table)]),
                              SourceInfo(path=str(path), size=path.stat().st_size, artifact="embconv-output",
                                         container=container))
    info = side.get("embconv.word2vec") if isinstance(side, dict) else None
    manifest = check_manifest(side.get("embconv.manifest") if isinstance(side, dict) else None, path,
                              "sidecar manifest")
    name, dropped, renamed = _check_sidecar(info, manifest, container, n, lazy.dim, path)

    def source_row(i: int) -> int:
        for d in dropped:
            if d <= i:
                i += 1
        return i

    def tokens(start: int, stop: int) -> list[str]:
        keys = lazy.keys(start, stop)
        if not renamed and not any("%" in k for k in keys):
            return keys
        return [tok.original_of(k, source_row(start + j) in renamed) for j, k in enumerate(keys)]

    manifest = json.loads(json.dumps(manifest))
    tmeta = next(t for t in manifest["tables"] if t["name"] == name)
    manifest["tables"] = [tmeta]
    tmeta["rows"] = n  # this file's rows: the table's, less the dropped unknown row
    if tmeta["vocab"] is not None:
        tmeta["vocab"]["size"] = n
        if dropped:
            tmeta["vocab"]["unknown_index"] = None
    toks = {name: ChunkedStrings(n, checked(tokens))} if tmeta["vocab"] is not None else {}
    return model_from_output(manifest, {name: (lazy, None)}, toks, path, container, what="sidecar manifest")


def _check_sidecar(info: Any, manifest: dict, container: str, n: int, dim: int,
                   path: Path) -> tuple[str, list[int], set[int]]:
    """(table, dropped rows, renamed rows) of a sidecar's ``embconv.word2vec`` if it is what
    embconv writes for this file and agrees with the sidecar's manifest and the file: its
    format, the table the manifest lists, row numbers of that table (the dropped one its
    unknown row), row labels exactly where the table has no vocabulary, as many rows as the
    file holds plus those dropped, and its dimension. UnreadableInputError otherwise."""
    def bad(message: str) -> UnreadableInputError:
        return UnreadableInputError(f"sidecar's embconv.word2vec is malformed: {message}", path=str(path))

    def row_numbers(key: str, rows: int) -> list[int]:
        value = info.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < rows
                                                  for v in value) or len(set(value)) != len(value):
            raise bad(f"{key} is not a list of distinct row numbers of the table")
        return sorted(value)

    if not isinstance(info, dict) or not isinstance(info.get("table"), str):
        raise bad("no table name")
    for key, want in (("layout", 1), ("format", container), ("escaping", "percent-1")):
        if key in info and (info[key] != want or type(info[key]) is not type(want)):
            raise bad(f"{key} is {str(info[key])[:40]!r}, expected {want!r}")
    name = info["table"]
    t = next((t for t in manifest["tables"] if t["name"] == name), None)
    if t is None:
        raise UnreadableInputError(f"sidecar names table {name!r} but its manifest lacks it", path=str(path))
    row_labels = info.get("row_labels", t["vocab"] is None)
    if not isinstance(row_labels, bool) or row_labels != (t["vocab"] is None):
        raise bad("row_labels is not true exactly where the table has no vocabulary")
    dropped = row_numbers("dropped_rows", t["rows"])
    unk = t["vocab"]["unknown_index"] if t["vocab"] is not None else None
    if dropped and dropped != [unk]:
        raise bad("dropped_rows names a row other than the unknown one")
    renamed = set(row_numbers("renamed_rows", t["rows"]))
    if t["rows"] != n + len(dropped) or t["dim"] != dim:
        raise UnreadableInputError(f"the file holds {n}x{dim} (+{len(dropped)} dropped), its sidecar manifest says "
                                   f"{t['rows']}x{t['dim']}", path=str(path))
    return name, dropped, renamed


def _write_text(model: EmbeddingModel, path: Path, *, dtype: str = "float32", progress: Progress | None = None,
                drop_unknown: bool = False, **options: Any) -> None:
    write(model, path, binary=False, dtype=dtype, progress=progress, drop_unknown=drop_unknown, **options)


def _write_binary(model: EmbeddingModel, path: Path, *, dtype: str = "float32", progress: Progress | None = None,
                  drop_unknown: bool = False, **options: Any) -> None:
    write(model, path, binary=True, dtype=dtype, progress=progress, drop_unknown=drop_unknown, **options)


def _read_text(path: Path) -> EmbeddingModel:
    return read(path, binary=False)


def _read_binary(path: Path) -> EmbeddingModel:
    return read(path, binary=True)


def extra_files(model: EmbeddingModel, path: Path, options: dict) -> list[Path]:
    """The sidecar manifest written beside every word2vec file."""
    return [sidecar_path(path)]


TEXT_FORMAT = register(Format(
    name=TEXT,
    suffixes=(".vec", ".txt"),
    sniff=sniff_text,
    write=_write_text,
    read=_read_text,
    holds=holds,
    options_of=options_of,
    one_table_per_file=True,
    extra_files=extra_files,
    load_hint="gensim.models.KeyedVectors.load_word2vec_format('{path}')",
))
BINARY_FORMAT = register(Format(
    name=BINARY,
    suffixes=(".bin",),
    sniff=sniff_binary,
    write=_write_binary,
    read=_read_binary,
    holds=holds,
    options_of=options_of,
    one_table_per_file=True,
    extra_files=extra_files,
    load_hint="gensim.models.KeyedVectors.load_word2vec_format('{path}', binary=True)",
))
