"""The intermediate representation shared by loaders and writers, and its JSON manifest.

Loaders build an ``EmbeddingModel``; writers read one. Nothing else crosses that line
(design.md §1–2). Weights stay lazy: a table holds a reference into the source file (or an
array) and ``weight`` materialises it on demand (the lazy helpers are in ``lazy.py``)."""

from __future__ import annotations

import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .hashing import Identity, PendingHash, changed_error, file_sha256, hash_in_background, identity_of
from .lazy import ArraySource, ChunkedStrings, WithoutRow

# 2: warnings are objects {code, table, message} (version 1 had plain strings; still read).
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
GENERATIONS = ("fastai-0.7", "fastai-1", "fastai2-preview", "fastai-2", "unknown")
ARTIFACTS = ("export", "save", "encoder", "state-dict", "embconv-output")
CONTAINERS = ("torch-zip", "torch-legacy", "pickle", "safetensors", "onnx", "word2vec-text", "word2vec-binary",
              "parquet")
KINDS = ("collab-dot", "collab-nn", "tabular", "text-lm", "text-classifier", "unknown")
ROLES = ("user", "item", "category", "token")


def token_string(token: Any) -> str:
    """The string form of a token: ``str()`` as fastai prints it (numpy scalars print as numpy
    does, so ``np.float32(0.1)`` is ``'0.1'``)."""
    if isinstance(token, bytes):
        return token.decode("utf-8", "backslashreplace")
    return str(token)


def python_scalar(token: Any) -> Any:
    """numpy scalars as Python scalars; everything else unchanged."""
    if isinstance(token, np.generic):
        return token.item()
    return token


def _is_nan(token: Any) -> bool:
    """True for a float (Python or numpy) NaN."""
    return isinstance(token, (float, np.floating)) and token != token


def query_number(token: Any) -> int | float | None:
    """``token`` as a number when it is one: a Python or numpy int or float (bools are their own
    values, never numbers; NaN is no number either); None otherwise (str included)."""
    t = python_scalar(token)
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return None
    return None if t != t else t


def canonical_number(text: str) -> int | float | None:
    """The number whose ``str()`` is exactly ``text`` (``'7'`` → 7, ``'1.5'`` → 1.5, ``'1e+16'``);
    None for anything else: ``'007'``, ``'+7'``, ``' 7'``, ``'1_0'``, ``'7.50'``, ``'nan'``, words."""
    if not text or len(text) > 64 or not (text[0].isdigit() or text[0] in "-i"):
        return None
    try:
        n = int(text)
        return n if str(n) == text else None
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        return None
    return f if f == f and str(f) == text else None


def loose_number(text: str) -> int | float | None:
    """``text`` parsed as Python's ``int``/``float`` parse it (``'007'`` → 7, ``' 1.50 '`` → 1.5),
    for a "did you mean" hint only; None when it is no number (or NaN)."""
    if len(text) > 64:
        return None
    for parse in (int, float):
        try:
            n = parse(text)
        except ValueError:
            continue
        return None if n != n else n
    return None


class Vocabulary:
    """Row i → token. ``tokens`` keeps the original Python scalars (str/int/float/bool);
    ``strings`` their string forms; ``unknown_index`` is the row unseen ids map to (``#na#``
    or the NaN row), or None; ``source`` says where the vocabulary came from.

    ``index(query)`` finds a token's row by these rules, in order (the first row wins on
    duplicates):

    1. the query's string form (``str()``, numpy scalars as numpy prints them) equals the
       token's: ``'7'`` and ``np.int16(7)`` find the int 7, ``True`` and ``'True'`` the bool True
       or the string ``'True'``, ``'#na#'`` the ``#na#`` row;
    2. otherwise numbers match numbers by value, as fastai's own ``o2i`` dictionaries do
       (``7.0`` finds the int 7, ``7`` the float 7.0), where
       * a numeric query (a Python/numpy int or float, never a bool) matches a numeric token, or
         a string token that is the canonical string form of a number (``str(int)`` or
         ``str(float)``: fastai 1 stores numeric classes as such strings, so ``1002.0`` finds
         ``'1002'`` and ``1.5`` finds ``'1.5'``; but ``7`` never finds ``'007'`` or ``'7.50'``);
       * a string query that is the canonical string form of a number (``'7'``, ``'7.0'``;
         not ``'007'``, ``'+7'``, ``' 7'``) matches a numeric token of that value (``'7'`` finds
         the float 7.0, ``'7.0'`` the int 7), never a string token: between two strings only
         rule 1 holds, so ``'1'`` does not find the string ``'1.0'``.

    Bools never match numbers (``True`` is not 1). NaN matches nothing (a NaN token is in no
    index; the unknown row is what fastai gives it). A vocabulary read back from an output holds
    string forms only, so there rule 2 is the numeric-query half alone."""

    def __init__(self, tokens: Iterable[Any], *, unknown_index: int | None = None, source: str = "file",
                 strings: Iterable[str] | None = None) -> None:
        self.tokens: Sequence[Any]
        self.strings: Sequence[str]
        self.unknown_index = unknown_index
        self.source = source
        self._index: dict[str, int] | None = None
        self._numeric: tuple[dict[int | float, int], dict[int | float, int]] | None = None
        if isinstance(tokens, ChunkedStrings) and strings is None:
            # Read back from an output: the tokens are their string forms, decoded on demand.
            self.tokens = self.strings = tokens
            return
        raw = list(tokens)
        if strings is None and all(type(t) is str for t in raw):
            # The common case (text sidecars, fastai's string vocabularies): a token is its own
            # string form, so one list serves both (half the memory, no per-token calls).
            self.tokens = self.strings = raw
        else:
            self.tokens = [python_scalar(t) for t in raw]
            self.strings = list(strings) if strings is not None else [token_string(t) for t in raw]
        if len(self.strings) != len(self.tokens):
            raise ValueError("tokens and strings differ in length")

    def __len__(self) -> int:
        return len(self.tokens)

    def index(self, token: Any) -> int | None:
        """The row of ``token``, or None (the class docstring has the matching rules). The
        string-form index is built on the first call; the numeric one only when a number is
        looked up that the first misses."""
        if self._index is None:
            self._index = self._string_index()
        s = token_string(token)
        i = self._index.get(s)
        if i is not None:
            return None if s == "nan" and _is_nan(token) else i
        if isinstance(token, str):  # matches numeric tokens only (there are none when tokens are strings)
            n = canonical_number(token) if self.tokens is not self.strings else None
            return None if n is None else self._numeric_index()[0].get(n)
        n = query_number(token)
        if n is None:
            return None
        by_number, by_string = self._numeric_index()
        found = [r for r in (by_number.get(n), by_string.get(n)) if r is not None]
        return min(found) if found else None

    def near(self, token: Any) -> str | None:
        """For an error message about a string ``token`` that ``index`` does not find: the
        string form of a token it resembles as a number (``'1'`` → ``'1.0'`` of a string
        vocabulary, ``'007'`` → ``'7'``); None when there is none (and for other queries)."""
        n = loose_number(token) if isinstance(token, str) else None
        if n is None:
            return None
        by_number, by_string = self._numeric_index()
        rows = [r for r in (by_number.get(n), by_string.get(n)) if r is not None]
        return self.strings[min(rows)] if rows else None

    def _string_index(self) -> dict[str, int]:
        idx: dict[str, int] = {}
        if self.tokens is not self.strings and any(_is_nan(t) for t in self.tokens):
            for i, (t, s) in enumerate(zip(self.tokens, self.strings, strict=True)):
                if not _is_nan(t):  # a NaN token is found by nothing
                    idx.setdefault(s, i)
            return idx
        for i, s in enumerate(self.strings):
            idx.setdefault(s, i)
        return idx

    def _numeric_index(self) -> tuple[dict[int | float, int], dict[int | float, int]]:
        """(number → row of the numeric tokens, number → row of the string tokens that are the
        canonical string form of a number), built once."""
        if self._numeric is None:
            by_number: dict[int | float, int] = {}
            by_string: dict[int | float, int] = {}
            mixed = self.tokens is not self.strings
            for i, t in enumerate(self.tokens):
                if isinstance(t, str):
                    n = canonical_number(t)
                    if n is not None:
                        by_string.setdefault(n, i)
                elif mixed:
                    n = query_number(t)
                    if n is not None:
                        by_number.setdefault(n, i)
            self._numeric = (by_number, by_string)
        return self._numeric

    def duplicates(self) -> list[str]:
        """String forms that label more than one row (e.g. fastai's ``xxfake`` padding)."""
        seen: dict[str, int] = {}
        for s in self.strings:
            seen[s] = seen.get(s, 0) + 1
        return [s for s, n in seen.items() if n > 1]

    def to_json(self, include_tokens: bool = True) -> dict:
        out: dict[str, Any] = {"size": len(self), "unknown_index": self.unknown_index, "source": self.source}
        if include_tokens:
            out["tokens"] = list(self.strings)
        return out


@dataclass
class EmbeddingTable:
    """One embedding matrix and what labels its rows."""

    name: str
    role: str
    weight_source: ArraySource  # a TensorRef (lazy), an InMemory array or a reader's lazy view
    vocab: Vocabulary | None = None
    bias_source: ArraySource | None = None
    weight_key: str = ""
    bias_key: str | None = None
    tied_keys: list[str] = field(default_factory=list)
    source_dtype: str = "float32"

    @property
    def shape(self) -> tuple[int, int]:
        s = tuple(self.weight_source.shape)
        return (s[0], s[1]) if len(s) == 2 else (s[0], 1)

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def dim(self) -> int:
        return self.shape[1]

    @property
    def weight(self) -> np.ndarray:
        """(rows, dim) array with the source's values and dtype (bfloat16 widened to float32)."""
        a = self.weight_source.to_numpy()
        return a.reshape(self.shape) if a.ndim != 2 else a

    @property
    def bias(self) -> np.ndarray | None:
        """(rows,) array, or None."""
        if self.bias_source is None:
            return None
        return self.bias_source.to_numpy().reshape(-1)

    def weight_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``weight``, materialising only those rows when the source can
        (a TensorRef reads just their bytes; a lazy reader parses just those lines)."""
        rows = getattr(self.weight_source, "rows", None)
        if rows is not None:
            a = rows(start, stop)
            return a.reshape(-1, self.dim) if a.ndim != 2 else a
        return self.weight[start:stop]

    @property
    def weight_itemsize(self) -> int:
        """Bytes per value of ``weight`` (bfloat16 widens to 4), without materialising it."""
        return self.weight_dtype.itemsize

    @property
    def weight_dtype(self) -> np.dtype:
        """The numpy dtype ``weight`` has (bfloat16 widens to float32), without materialising it."""
        dt = getattr(self.weight_source, "dtype", None)
        if self.source_dtype == "bfloat16" or getattr(dt, "name", None) == "bfloat16":
            return np.dtype(np.float32)
        np_name = getattr(dt, "numpy", None)  # a TensorRef's DType
        if np_name is not None:
            return np.dtype(np_name).newbyteorder("=")
        if isinstance(dt, np.dtype):
            return dt
        return self.weight_rows(0, 1).dtype

    def weight_file_span(self, dtype: np.dtype) -> tuple[str, int, int, tuple[int, ...]] | None:
        """(path, byte offset, byte count, file identity: device, inode, size, mtime) of the
        weight in the source file when those bytes already are what a writer wants (``dtype``,
        little-endian, row after row), so it can copy them file to file; None otherwise
        (conversion, a view, an array in memory)."""
        span = getattr(self.weight_source, "file_span", None)
        dt = np.dtype(dtype)
        if span is None or dt.str[0] == ">" or self.weight_dtype != dt:  # the file is little-endian
            return None
        found = span()
        if found is None or found[2] != self.rows * self.dim * dt.itemsize:
            return None
        return found

    def view(self, *, bias: bool = True, drop_row: int | None = None) -> EmbeddingTable:
        """This table as an output format holds it: without its bias, and/or without one row
        (the unknown row, which then is no longer in the vocabulary; that view's vocabulary
        holds the string forms). Nothing is copied."""
        weight, bias_source, vocab = self.weight_source, self.bias_source if bias else None, self.vocab
        if drop_row is not None:
            weight = WithoutRow(weight, drop_row)
            bias_source = WithoutRow(bias_source, drop_row) if bias_source is not None else None
            if vocab is not None:
                vocab = Vocabulary(WithoutRow(vocab.strings, drop_row), unknown_index=None, source=vocab.source)
        return EmbeddingTable(self.name, self.role, weight, vocab, bias_source, self.weight_key,
                              self.bias_key if bias_source is not None else None, list(self.tied_keys),
                              self.source_dtype)

    def row_chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) slices of the weight, for streaming writers (only one chunk is
        materialised at a time)."""
        for start in range(0, self.rows, max(1, chunk_rows)):
            yield start, self.weight_rows(start, start + chunk_rows)

    def lookup(self, token: Any, unknown: str = "raise") -> np.ndarray:
        """The vector of ``token``, found by ``Vocabulary.index``'s rules (a token's string form,
        or numbers by value: ``7``, ``'7'``, ``np.int64(7)`` and ``7.0`` all find the int 7).
        A token not in the vocabulary is a KeyError naming it and the table (``unknown="raise"``),
        or, with ``unknown="na"``, gets fastai's answer: the unknown (``#na#``) row (KeyError when
        the table has none). A table without vocabulary is a KeyError."""
        if unknown not in ("raise", "na"):
            raise ValueError(f"unknown={unknown!r}: use 'raise' or 'na'")
        if self.vocab is None:
            raise KeyError(f"table {self.name!r} has no vocabulary")
        i = self.vocab.index(token)
        if i is None:
            if unknown == "na" and self.vocab.unknown_index is not None:
                i = self.vocab.unknown_index
            else:
                raise KeyError(_missing_message(self, token, unknown))
        return self.weight[i]

    def to_frame(self, vector: str = "columns") -> Any:
        """This table as a pandas DataFrame indexed by the tokens' string forms: float32 columns
        ``0 … dim-1`` (or, with ``vector="list"``, one column ``vector`` of float32 arrays), ``bias``
        where there is one, ``is_unknown``. Needs the data extra (see ``converter.frames``)."""
        from .frames import table_frame

        return table_frame(self, vector=vector)

    def most_similar(self, query: Any, k: int = 10) -> list[tuple[Any, float]]:
        """The ``k`` rows nearest to ``query`` (a token, or a vector of ``dim`` numbers) by cosine:
        ``[(token string form, similarity), …]`` best first, the unknown row and the query's own
        row left out (see ``converter.similarity``)."""
        from .similarity import most_similar

        return most_similar(self, query, k)

    def to_json(self, include_tokens: bool = True) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "rows": self.rows,
            "dim": self.dim,
            "dtype": self.source_dtype,
            "weight_key": self.weight_key,
            "bias_key": self.bias_key,
            "tied_keys": list(self.tied_keys),
            "vocab": self.vocab.to_json(include_tokens) if self.vocab is not None else None,
        }



def _missing_message(table: EmbeddingTable, token: Any, unknown: str) -> str:
    """Why ``table.lookup(token)`` found no row, in a line (a near form of the token, if any)."""
    assert table.vocab is not None
    shown = token if isinstance(token, str) else python_scalar(token)
    label = repr(shown)
    if len(label) > 80:
        label = label[:77] + "..."
    msg = f"{label} is not in table {table.name!r}"
    near = table.vocab.near(token)
    if near is not None:
        msg += f" (did you mean {near!r}?)"
    elif unknown == "na":
        msg += " and the table has no unknown (#na#) row"
    return msg


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\u{c:04x}"


def printable(text: str) -> str:
    """``text`` as valid Unicode, for the manifest's paths and messages: a path's undecodable
    bytes (Python's surrogateescape, U+DC80–U+DCFF) as ``\\xNN`` — what
    ``os.fsencode(p).decode("utf-8", "backslashreplace")`` gives — and any other lone surrogate
    as ``\\uDXXX``. A path that is valid UTF-8 is unchanged."""
    return _SURROGATE.sub(_escape_surrogate, text) if _SURROGATE.search(text) else text


@dataclass
class SourceInfo:
    path: str
    size: int
    generation: str = "unknown"
    artifact: str = "state-dict"
    container: str = "pickle"
    model_class: str | None = None
    _sha256: str | None = None
    _hashing: PendingHash | None = field(default=None, repr=False, compare=False)
    #: For an embconv output read back: the sha256 its manifest records for the model file it
    #: was converted from (``verify`` compares it with the file it is given); None when it was
    #: converted from another embconv output.
    recorded_sha256: str | None = field(default=None, compare=False)
    # The file's identity when it was first opened for this run (see ``check_unchanged``).
    _identity: Identity | None = field(default=None, repr=False, compare=False)

    def start_sha256(self) -> None:
        """Start hashing the source in a background thread; ``sha256`` waits for it. Only
        commands that write a manifest need the hash; ``inspect`` never starts it."""
        self.expect_sha256(hash_in_background(self.path))

    def expect_sha256(self, pending: PendingHash | None) -> None:
        """Use a hash already being computed (from ``hash_in_background``) of this file; the
        file's identity when the hash opened it is what ``check_unchanged`` compares with."""
        if self._sha256 is None and self._hashing is None and pending is not None:
            self._hashing = pending
            if self._identity is None:
                self._identity = pending.identity

    def check_unchanged(self) -> None:
        """UnreadableInputError (exit 3, "the source changed while being read") when the file at
        ``path`` is no longer the one first opened (another device/inode, size, mtime or ctime):
        a conversion calls it after its last read of the source, so what it wrote and the hash
        its manifest names are of one version of the file. A no-op when no identity was taken."""
        if self._identity is None:
            return
        try:
            now: Identity | None = identity_of(os.stat(self.path))
        except OSError:
            now = None
        if now != self._identity:
            raise changed_error(self.path, self._identity, now)

    @property
    def sha256_known(self) -> bool:
        """True when ``sha256`` would return at once (computed, or its background hash finished)."""
        return self._sha256 is not None or (self._hashing is not None and self._hashing.done())

    @property
    def sha256(self) -> str:
        """The source's sha256 (waits for the background hash). Raises "the source changed while
        being read" (exit 3) when the file changed while or since it was hashed."""
        if self._sha256 is None:
            if self._hashing is not None:
                self._sha256, self._hashing = self._hashing.result(), None
            else:
                self._sha256 = file_sha256(self.path)
        self.check_unchanged()
        return self._sha256

    def to_json(self, sha256: str | None = None) -> dict:
        """The manifest's ``source``; ``sha256`` stands in for the hash (a writer that patches
        the real one in later, when the background hash has finished)."""
        return {
            "path": self.path,
            "sha256": sha256 if sha256 is not None else self.sha256,
            "size": self.size,
            "generation": self.generation,
            "artifact": self.artifact,
            "container": self.container,
            "model_class": self.model_class,
        }


@dataclass(frozen=True)
class ModelWarning:
    """Something a user must know about a model: a stable ``code`` (what programs match on; see
    schemas/manifest.schema.json), the ``table`` it is about (or None) and the ``message`` a
    person reads. ``str()`` is the message."""

    code: str
    message: str
    table: str | None = None

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict:
        return {"code": self.code, "table": self.table, "message": self.message}

    @classmethod
    def from_json(cls, value: Any) -> ModelWarning:
        """A manifest's warning: an object (schema 2) or a plain string (schema 1, code ``note``)."""
        if isinstance(value, str):
            return cls("note", value)
        if (isinstance(value, dict) and isinstance(value.get("code"), str) and isinstance(value.get("message"), str)
                and (value.get("table") is None or isinstance(value.get("table"), str))):
            return cls(value["code"], value["message"], value.get("table"))
        raise ValueError(f"a warning is not {{code, table, message}}: {value!r}")


@dataclass
class ModelInfo:
    kind: str = "unknown"
    y_range: tuple[float, float] | None = None

    def to_json(self) -> dict:
        return {"kind": self.kind, "y_range": list(self.y_range) if self.y_range is not None else None}


class Tables(OrderedDict):
    """A model's tables by name (ordered), where a table renamed after its data column (``user`` →
    ``userId``, ``cat_0`` → ``city``) is still found under its old name: ``aliases`` maps old names
    to current ones. Iteration, ``keys()`` and ``len`` see current names only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}

    def resolve(self, name: str) -> str:
        """The current name of ``name`` (itself when it is not an alias)."""
        if OrderedDict.__contains__(self, name):
            return name
        return self.aliases.get(name, name)

    def __getitem__(self, name: str) -> EmbeddingTable:
        return OrderedDict.__getitem__(self, self.resolve(name))

    def __contains__(self, name: object) -> bool:
        return OrderedDict.__contains__(self, name) or (isinstance(name, str) and name in self.aliases)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default


@dataclass
class EmbeddingModel:
    """A model as named embedding tables (ordered), where it came from, and what to watch for.
    ``tables[name]`` also finds a table under the placeholder it had before it was named after its
    data column (``user``, ``item``, ``cat_N``)."""

    tables: OrderedDict[str, EmbeddingTable]
    source: SourceInfo
    model: ModelInfo = field(default_factory=ModelInfo)
    warnings: list[ModelWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.tables, Tables):
            self.tables = Tables(self.tables)

    def warn(self, code: str, message: str, table: str | None = None) -> None:
        """Add a warning (see ``ModelWarning``)."""
        self.warnings.append(ModelWarning(code, message, table))

    def drop_warnings(self, code: str, tables: Iterable[str | None] | None = None) -> None:
        """Remove the warnings with ``code`` (only those about ``tables``, when given)."""
        about = None if tables is None else set(tables)
        self.warnings[:] = [w for w in self.warnings if not (w.code == code and (about is None or w.table in about))]

    def rename_table(self, old: str, new: str) -> None:
        """Rename a table in place, keeping the order of tables and what its warnings name."""
        old = self._resolve(old)
        table = self.tables[old]
        items = [(new if k == old else k, v) for k, v in self.tables.items()]
        table.name = new
        aliases = {a: (new if c == old else c) for a, c in self._aliases().items() if a != new}
        self.tables.clear()
        self.tables.update(items)
        aliases[old] = new
        self._set_aliases(aliases)
        self.warnings[:] = [ModelWarning(w.code, w.message, new) if w.table == old else w for w in self.warnings]

    def manifest(self, include_tokens: bool = True, *, sha256: str | None = None) -> dict:
        """The manifest of design.md §2 (validated by schemas/manifest.schema.json); ``sha256``
        stands in for the source's hash (see ``SourceInfo.to_json``)."""
        from . import __version__

        tables = [t.to_json(include_tokens) for t in self.tables.values()]
        for t in tables:  # a vocabulary's source names its file (--vocab, --data): a path, maybe not UTF-8
            if t["vocab"] is not None and isinstance(t["vocab"].get("source"), str):
                t["vocab"]["source"] = printable(t["vocab"]["source"])
        return {
            "schema_version": SCHEMA_VERSION,
            "embconv_version": __version__,
            "source": {k: printable(v) if isinstance(v, str) else v for k, v in self.source.to_json(sha256).items()},
            "model": self.model.to_json(),
            "tables": tables,
            "warnings": [{**w.to_json(), "message": printable(w.message)} for w in self.warnings],
        }

    def manifest_json(self, include_tokens: bool = True, *, sha256: str | None = None) -> str:
        return json.dumps(self.manifest(include_tokens, sha256=sha256), ensure_ascii=False, allow_nan=False)

    def to_frames(self, vector: str = "columns") -> dict[str, Any]:
        """Every table as a pandas DataFrame (``EmbeddingTable.to_frame``), by table name."""
        from .frames import model_frames

        return model_frames(self, vector=vector)

    def select(self, names: Iterable[str]) -> EmbeddingModel:
        """A model with only the named tables (KeyError naming the missing one), and only the
        warnings about them or about the whole model."""
        chosen = Tables()
        for n in names:
            if n not in self.tables:
                raise KeyError(n)
            chosen[self._resolve(n)] = self.tables[n]
        chosen.aliases = {a: c for a, c in self._aliases().items() if c in chosen}
        kept = [w for w in self.warnings if w.table is None or w.table in chosen]  # not about tables left out
        return EmbeddingModel(chosen, self.source, self.model, kept)

    def _resolve(self, name: str) -> str:
        return self.tables.resolve(name) if isinstance(self.tables, Tables) else name

    def _aliases(self) -> dict[str, str]:
        return dict(self.tables.aliases) if isinstance(self.tables, Tables) else {}

    def _set_aliases(self, aliases: dict[str, str]) -> None:
        if not isinstance(self.tables, Tables):
            self.tables = Tables(self.tables)
        self.tables.aliases = aliases


def finite_range(value: Any) -> tuple[float, float] | None:
    """A y_range as two finite floats, or None."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return (lo, hi)


TABLE_DTYPES = ("float32", "float16", "bfloat16", "float64")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WARNING_CODE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TOP_KEYS = ("schema_version", "embconv_version", "source", "model", "tables", "warnings")
_SOURCE_KEYS = ("path", "sha256", "size", "generation", "artifact", "container", "model_class")
_TABLE_KEYS = ("name", "role", "rows", "dim", "dtype", "weight_key", "bias_key", "tied_keys", "vocab")


class ManifestError(ValueError):
    """A manifest that is not what schemas/manifest.schema.json describes (the message says where)."""


def _is_int(value: Any) -> bool:
    """An integer in the JSON sense: a Python int that is not a bool (``True`` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite JSON number (int or float, never a bool, NaN or an infinity)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value)


def _fields(obj: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict:
    """``obj`` if it is a JSON object with every ``required`` key and no key but those and
    ``optional`` (the schema's ``additionalProperties: false``); ManifestError otherwise."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where} is not a JSON object")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ManifestError(f"{where} lacks {', '.join(missing)}")
    extra = [k for k in obj if k not in required and k not in optional]
    if extra:
        raise ManifestError(f"{where} has an unexpected field {str(extra[0])[:40]!r}")
    return obj


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ManifestError(message)


def _string_list(value: Any, where: str) -> None:
    _check(isinstance(value, list) and all(isinstance(v, str) for v in value), f"{where} is not a list of strings")


def validate_manifest(manifest: Any) -> dict:
    """``manifest`` if it has the shape schemas/manifest.schema.json gives it — every field
    present, of its type (strings where strings, integers where integers: a bool is no integer,
    a float with no fraction neither; finite numbers), enums within their values, list items of
    their type, no unexpected field — else ManifestError naming the first field that is not.
    This is the one place manifests read back are checked (jsonschema is no runtime dependency)."""
    m = _fields(manifest, "the manifest", _TOP_KEYS)
    version = m["schema_version"]
    _check(_is_int(version) and version in READABLE_SCHEMA_VERSIONS,
           f"schema_version {str(version)[:40]!r} is not one this embconv reads "
           f"({', '.join(map(str, READABLE_SCHEMA_VERSIONS))})")
    _check(isinstance(m["embconv_version"], str), "embconv_version is not a string")

    src = _fields(m["source"], "source", _SOURCE_KEYS)
    _check(isinstance(src["path"], str), "source.path is not a string")
    _check(isinstance(src["sha256"], str) and _SHA256.fullmatch(src["sha256"]) is not None,
           "source.sha256 is not 64 lowercase hex digits")
    _check(_is_int(src["size"]) and src["size"] >= 0, "source.size is not a non-negative integer")
    for key, allowed in (("generation", GENERATIONS), ("artifact", ARTIFACTS), ("container", CONTAINERS)):
        _check(isinstance(src[key], str) and src[key] in allowed, f"unknown {key} {str(src[key])[:40]!r}")
    _check(src["model_class"] is None or isinstance(src["model_class"], str), "source.model_class is not a string")

    model = _fields(m["model"], "model", ("kind", "y_range"))
    _check(isinstance(model["kind"], str) and model["kind"] in KINDS, f"unknown model kind {str(model['kind'])[:40]!r}")
    y = model["y_range"]
    _check(y is None or (isinstance(y, list) and len(y) == 2 and all(_is_number(v) for v in y)),
           "model.y_range is not null or two finite numbers")

    _check(isinstance(m["tables"], list), "tables is not a list")
    names: set[str] = set()
    for i, t in enumerate(m["tables"]):
        _fields(t, f"table {i}", _TABLE_KEYS)
        name = t["name"]
        _check(isinstance(name, str) and name != "", f"table {i}: name is not a non-empty string")
        where = f"table {name[:80]!r}"
        _check(name not in names, f"{where} is listed twice")
        names.add(name)
        _check(isinstance(t["role"], str) and t["role"] in ROLES, f"{where}: unknown role {str(t['role'])[:40]!r}")
        for key in ("rows", "dim"):
            _check(_is_int(t[key]) and t[key] >= 0, f"{where}: {key} is not a non-negative integer")
        _check(isinstance(t["dtype"], str) and t["dtype"] in TABLE_DTYPES, f"{where}: unknown dtype {str(t['dtype'])[:40]!r}")
        _check(isinstance(t["weight_key"], str), f"{where}: weight_key is not a string")
        _check(t["bias_key"] is None or isinstance(t["bias_key"], str), f"{where}: bias_key is not a string or null")
        _string_list(t["tied_keys"], f"{where}: tied_keys")
        v = t["vocab"]
        if v is None:
            continue
        _fields(v, f"{where}: vocab", ("size", "unknown_index", "source"), ("tokens",))
        _check(_is_int(v["size"]) and v["size"] >= 0, f"{where}: vocab.size is not a non-negative integer")
        unk = v["unknown_index"]
        _check(unk is None or (_is_int(unk) and unk >= 0), f"{where}: vocab.unknown_index is not null or a row number")
        _check(isinstance(v["source"], str), f"{where}: vocab.source is not a string")
        if "tokens" in v:
            _string_list(v["tokens"], f"{where}: vocab.tokens")

    _check(isinstance(m["warnings"], list), "warnings is not a list")
    for w in m["warnings"]:
        if version == 1:
            _check(isinstance(w, str), "a schema-1 warning is not a string")
            continue
        _fields(w, "a warning", ("code", "table", "message"))
        _check(isinstance(w["code"], str) and _WARNING_CODE.fullmatch(w["code"]) is not None,
               f"a warning's code {str(w['code'])[:40]!r} is not a code")
        _check(w["table"] is None or isinstance(w["table"], str), "a warning's table is not a string or null")
        _check(isinstance(w["message"], str) and w["message"] != "", "a warning's message is not a non-empty string")
    return m


def _check_arrays(t: dict, weight: ArraySource, bias: ArraySource | None) -> None:
    """ManifestError unless a table's arrays are what its (validated) manifest entry says: a 2-D
    floating-point weight of ``rows`` × ``dim``, a bias of ``rows`` floats, a vocabulary of
    ``rows`` tokens whose unknown row is one of them."""
    where = f"table {t['name']!r}"
    shape = tuple(weight.shape)
    if len(shape) != 2:
        raise ManifestError(f"{where}: the weight has {len(shape)} dimensions, not 2")
    if shape != (t["rows"], t["dim"]):
        raise ManifestError(f"{where}: the weight is {shape[0]}x{shape[1]}, the manifest says {t['rows']}x{t['dim']}")
    for what, src in (("weight", weight), ("bias", bias)):
        dt = getattr(src, "dtype", None)
        if isinstance(dt, np.dtype) and dt.kind != "f":
            raise ManifestError(f"{where}: the {what} holds {dt}, not floating-point numbers")
    if bias is not None and tuple(bias.shape) != (t["rows"],):
        raise ManifestError(f"{where}: the bias has shape {list(bias.shape)}, expected [{t['rows']}]")
    v = t["vocab"]
    if v is not None:
        if v["size"] != t["rows"]:
            raise ManifestError(f"{where}: vocab.size is {v['size']}, the table has {t['rows']} rows")
        if v["unknown_index"] is not None and v["unknown_index"] >= t["rows"]:
            raise ManifestError(f"{where}: vocab.unknown_index {v['unknown_index']} is not one of its "
                                f"{t['rows']} rows")


def model_from_manifest(manifest: dict, arrays: dict[str, tuple[ArraySource, ArraySource | None]],
                        tokens: dict[str, list[str]] | None = None) -> EmbeddingModel:
    """Rebuild an EmbeddingModel from a manifest and, per table name, (weight, bias) array
    sources. ``tokens`` overrides the manifest's token lists (for layouts that store them apart).
    Tokens read back are their string forms. The manifest is checked first
    (:func:`validate_manifest`: ManifestError, a ValueError)."""
    validate_manifest(manifest)
    src = manifest["source"]
    source = SourceInfo(path=src["path"], size=src["size"], generation=src["generation"],
                        artifact=src["artifact"], container=src["container"],
                        model_class=src["model_class"], _sha256=src["sha256"])
    m = manifest["model"]
    info = ModelInfo(kind=m["kind"], y_range=finite_range(m["y_range"]) if m["y_range"] is not None else None)
    tables: OrderedDict[str, EmbeddingTable] = OrderedDict()
    for t in manifest["tables"]:
        if t["name"] not in arrays:
            raise ManifestError(f"table {t['name']!r}: its arrays are missing")
        weight, bias = arrays[t["name"]]
        _check_arrays(t, weight, bias)
        vocab = None
        v = t.get("vocab")
        if v is not None:
            toks = (tokens or {}).get(t["name"], v.get("tokens"))
            if toks is None:
                raise ManifestError(f"table {t['name']!r}: vocabulary tokens are missing")
            if len(toks) != t["rows"]:
                raise ManifestError(f"table {t['name']!r}: {len(toks)} tokens for {t['rows']} rows")
            vocab = Vocabulary(toks, unknown_index=v.get("unknown_index"), source=v.get("source", "file"))
        tables[t["name"]] = EmbeddingTable(
            name=t["name"], role=t["role"], weight_source=weight, vocab=vocab, bias_source=bias,
            weight_key=t["weight_key"], bias_key=t["bias_key"], tied_keys=list(t["tied_keys"]),
            source_dtype=t["dtype"],
        )
    warnings = [ModelWarning.from_json(w) for w in manifest["warnings"]]
    return EmbeddingModel(tables, source, info, warnings)
