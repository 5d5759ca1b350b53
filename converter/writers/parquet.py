"""Parquet writer and reader (``.parquet``), one file per table.

Layout (design.md §3, a contract). One row per embedding row, in row order:

``row``         int64: the row number, 0 … rows-1
``token``       string: the label's string form (``str()`` of the token, as fastai prints it);
                a table without a vocabulary (``--allow-unlabelled``) gets its row numbers as
                strings, as word2vec keys such rows, and its manifest says ``"vocab": null``
``vector``      ``fixed_size_list<float32>[dim]``: the embedding (float32 only: the contract)
``bias``        float32, only where the table has a bias
``is_unknown``  bool: true on the vocabulary's unknown (``#na#``) row only

Key-value metadata: ``embconv.manifest`` (the manifest of this one table, tokens omitted: they
are the ``token`` column) and ``embconv.layout`` = ``"1"``. A model with several tables is
written as ``<stem>.<table>.parquet`` per table (registry.plan), like word2vec.

Every row is kept (``drop_unknown`` is refused: ``is_unknown`` marks the row instead). Tokens
must be valid Unicode (Parquet strings are UTF-8): a lone surrogate from an old pickle is
refused with the row it is on.

Streaming: rows are buffered to about :data:`ROW_GROUP_BYTES` and each buffer is one
``ParquetWriter.write_table`` call, i.e. one row group, so memory holds one row group whatever
the table's size. Reading back is lazy too: ``rows(start, stop)`` reads only the row groups it
needs. pyarrow is imported only when a Parquet file is written or read (the ``data`` extra).

    import pyarrow.parquet as pq;  pq.read_table("out.parquet")
    import polars as pl;           pl.read_parquet("out.parquet")      # vector: Array(Float32, dim)
    duckdb: SELECT token, array_cosine_similarity(vector::FLOAT[64], ?::FLOAT[64]) FROM 'out.parquet'
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..chunks import bias_rows as bias_values
from ..chunks import output_dtype
from ..errors import OutputError, UnreadableInputError, UsageError
from ..ir import EmbeddingModel, EmbeddingTable
from ..lazy import ChunkedStrings, encoded
from ..mapped import release
from ._common import ProgressCounter, model_from_output, read_manifest
from .registry import Format, Progress, register

NAME = "parquet"
CONTAINER = "parquet"
LAYOUT = "1"
MAGIC = b"PAR1"
MANIFEST_KEY = "embconv.manifest"

#: Bytes of rows buffered per ``write_table`` call, i.e. per row group (tests make it small).
ROW_GROUP_BYTES = 32 << 20

#: Bytes of vectors decoded at a time on read-back (verification reads a table chunk by chunk).
_READ_BATCH_BYTES = 4 << 20

_EXTRA = "Parquet needs the data extra: pip install 'embconv[data]'"


def _writer_pool(pa: Any) -> Any:
    """jemalloc where pyarrow has it: the writer's freed buffers go back to the system (the
    default mimalloc pool kept ~40 MiB more resident at 1 GiB, see bench/README.md, Parquet)."""
    try:
        return pa.jemalloc_memory_pool()
    except (NotImplementedError, AttributeError):  # a build without jemalloc
        return pa.default_memory_pool()


def _pyarrow() -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet), or UsageError naming the extra to install."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(_EXTRA) from None
    return pa, pq


def _schema(pa: Any, dim: int, bias: bool) -> Any:
    fields = [pa.field("row", pa.int64(), nullable=False), pa.field("token", pa.string(), nullable=False),
              pa.field("vector", pa.list_(pa.float32(), dim), nullable=False)]
    if bias:
        fields.append(pa.field("bias", pa.float32(), nullable=False))
    fields.append(pa.field("is_unknown", pa.bool_(), nullable=False))
    return pa.schema(fields)


def _single(model: EmbeddingModel) -> EmbeddingTable:
    if len(model.tables) != 1:
        raise UsageError("a Parquet file holds exactly one table")
    return next(iter(model.tables.values()))


def group_rows(dim: int) -> int:
    """Rows per row group: about ROW_GROUP_BYTES of vectors, bias, row number and token."""
    return max(1, ROW_GROUP_BYTES // (4 * dim + 8 + 4 + 1 + 16))


#: Rows per block the vocabulary is asked for: a line-indexed sidecar (TextLines) cuts a whole
#: aligned block of 65,536 lines from its file without decoding it, as verification asks for them.
_TOKEN_BLOCK = 1 << 16


def _buffer_array(pa: Any, typ: Any, values: np.ndarray) -> Any:
    """A pyarrow array of ``typ`` over the bytes of the contiguous ``values``, without copying
    them and without ``pa.array`` (whose first call imports pandas: 0.25 s and ~50 MiB)."""
    return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])


def _view(col: Any, dtype: Any) -> np.ndarray:
    """The values of a primitive pyarrow array without nulls as a read-only numpy view of its
    buffer (no copy; ``to_numpy`` would import pandas on its first call)."""
    dt = np.dtype(dtype)
    if len(col) == 0:
        return np.empty(0, dtype=dt)
    return np.frombuffer(col.buffers()[1], dtype=dt, count=len(col), offset=col.offset * dt.itemsize)


class _TokenBlocks:
    """UTF-8 bytes and offsets of a vocabulary, asked for in aligned blocks of _TOKEN_BLOCK rows
    (the last one kept) and cut to each row group."""

    def __init__(self, strings: Any) -> None:
        self.strings, self.n = strings, len(strings)
        self.block: tuple[int, bytes, np.ndarray] | None = None

    def _get(self, k: int) -> tuple[bytes, np.ndarray]:
        if self.block is None or self.block[0] != k:
            lo = k * _TOKEN_BLOCK
            data, offsets = encoded(self.strings, lo, min(self.n, lo + _TOKEN_BLOCK))
            self.block = (k, data, offsets)
        return self.block[1], self.block[2]

    def take(self, start: int, stop: int) -> tuple[bytes, np.ndarray]:
        datas: list[bytes] = []
        offs: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        base = 0
        for k in range(start // _TOKEN_BLOCK, (stop - 1) // _TOKEN_BLOCK + 1):
            data, o = self._get(k)
            a, b = max(start - k * _TOKEN_BLOCK, 0), min(stop - k * _TOKEN_BLOCK, len(o) - 1)
            lo, hi = int(o[a]), int(o[b])
            datas.append(data if (lo, hi) == (0, len(data)) else data[lo:hi])
            offs.append(o[a + 1 : b + 1] - lo + base)
            base += hi - lo
        return (datas[0] if len(datas) == 1 else b"".join(datas)), np.concatenate(offs)


def _token_array(pa: Any, t: EmbeddingTable, blocks: _TokenBlocks | None, start: int, stop: int, path: Path) -> Any:
    """The ``token`` column of rows ``start:stop`` built from UTF-8 bytes and offsets (no Python
    string per row where the vocabulary is packed or a sidecar file)."""
    if t.vocab is None or blocks is None:
        data, offsets = encoded([str(i) for i in range(start, stop)], 0, stop - start)
    else:
        data, offsets = blocks.take(start, stop)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert t.vocab is not None
        bad = next(i for i, s in enumerate(t.vocab.strings[start:stop])
                   if not _valid_utf8(s))
        raise OutputError(f"table {t.name!r}: the token of row {start + bad} is not valid Unicode "
                          f"(a lone surrogate); Parquet strings are UTF-8", path=str(path)) from None
    if len(data) >= 1 << 31:
        raise OutputError(f"table {t.name!r}: tokens of rows {start}-{stop - 1} exceed 2 GiB", path=str(path))
    return pa.StringArray.from_buffers(stop - start, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))


def _valid_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def write(model: EmbeddingModel, path: Path, *, dtype: str = "float32", progress: Progress | None = None,
          drop_unknown: bool = False, **options: Any) -> None:
    """Write the single table of ``model`` to ``path`` (layout in the module docstring), one
    row group per ~ROW_GROUP_BYTES of rows, straight from the source a group at a time."""
    if dtype != "float32":
        raise UsageError(f"Parquet outputs hold float32 vectors only (the layout's contract: "
                         f"vector is fixed_size_list<float32>); asked for {dtype}")
    if drop_unknown:
        raise UsageError("Parquet keeps every row and marks the unknown row in its is_unknown column; "
                         "drop_unknown is for word2vec outputs")
    pa, pq = _pyarrow()
    t = _single(model)
    if t.dim < 1:
        raise OutputError(f"table {t.name!r} has dimension 0; a Parquet vector column cannot hold it", path=str(path))
    if t.vocab is not None and len(t.vocab) != t.rows:
        raise OutputError(f"table {t.name!r}: vocabulary has {len(t.vocab)} tokens, weight {t.rows} rows",
                          path=str(path))
    has_bias = t.bias_source is not None
    if has_bias:
        assert t.bias_source is not None
        bias_rows = int(np.prod(t.bias_source.shape, dtype=np.int64))
        if bias_rows != t.rows:
            raise OutputError(f"table {t.name!r}: bias has {bias_rows} rows, weight {t.rows}", path=str(path))
    f32 = output_dtype("float32")
    schema = _schema(pa, t.dim, has_bias)
    unk = t.vocab.unknown_index if t.vocab is not None else None
    bias = t.bias if has_bias else None  # (rows,): read a group at a time (bias_values: pread, no map)
    counter = ProgressCounter(t.rows, progress)
    step = group_rows(t.dim)
    # Floats barely compress: the vector (and bias) pages are stored plain and uncompressed,
    # without statistics, so writing costs little more than the copy; row/token/is_unknown get snappy.
    compression = {"row": "snappy", "token": "snappy", "is_unknown": "snappy", "vector": "none", "bias": "none"}
    blocks = _TokenBlocks(t.vocab.strings) if t.vocab is not None else None
    pool = _writer_pool(pa)
    with _sink(path) as sink, pq.ParquetWriter(sink, schema, compression=compression, use_dictionary=False,
                          write_statistics=["row", "is_unknown"], memory_pool=pool) as writer:
        for start in range(0, t.rows, step):
            stop = min(t.rows, start + step)
            src = t.weight_rows(start, stop)
            w = np.ascontiguousarray(src, dtype=f32).reshape(-1)  # the mapped source itself, usually
            flags = np.zeros(stop - start, dtype=np.bool_)
            if unk is not None and start <= unk < stop:
                flags[unk - start] = True
            columns = [_buffer_array(pa, pa.int64(), np.arange(start, stop, dtype=np.int64)),
                       _token_array(pa, t, blocks, start, stop, path),
                       pa.FixedSizeListArray.from_arrays(_buffer_array(pa, pa.float32(), w), t.dim)]
            if bias is not None:
                columns.append(_buffer_array(pa, pa.float32(), np.ascontiguousarray(bias_values(t, start, stop), dtype=f32)))
            columns.append(pa.Array.from_buffers(pa.bool_(), stop - start,
                                                 [None, pa.py_buffer(np.packbits(flags, bitorder="little"))]))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            del columns, w
            release(src)
            pool.release_unused()  # give the group's freed pages back before the next one
            counter.add(stop - start)
        # The footer is written last: by now the source's sha256 (hashed in the background) is known.
        writer.add_key_value_metadata({MANIFEST_KEY: model.manifest_json(include_tokens=False),
                                       "embconv.layout": LAYOUT})


def sniff(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) starts with Parquet's ``PAR1`` magic."""
    return head[:4] == MAGIC


class _Cursor:
    """Reads one column of one row group forward in batches (``ParquetFile.iter_batches``), so a
    group is never decoded whole: verification asks for consecutive rows, which continue the
    batches; asking for earlier rows starts the group again."""

    def __init__(self, pf: Any, group: int, name: str, batch_rows: int) -> None:
        self.group = group
        self.batches = pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=[name], use_threads=False)
        self.pos = 0  # first row of ``pending`` within the group
        self.pending: Any = None

    def take(self, lo: int, hi: int) -> list[Any]:
        """Arrays holding rows ``lo:hi`` of the group, in order (``lo >= self.pos``)."""
        out = []
        while lo < hi:
            if self.pending is None or self.pos + len(self.pending) <= lo:
                if self.pending is not None:
                    self.pos += len(self.pending)
                self.pending = next(self.batches).column(0)
                continue
            a, b = lo - self.pos, min(hi, self.pos + len(self.pending)) - self.pos
            out.append(self.pending.slice(a, b - a))
            lo = self.pos + b
        return out


class _Groups:
    """The row groups of one Parquet file, read on demand, a batch at a time (see _Cursor)."""

    def __init__(self, pf: Any, path: Path, dim: int) -> None:
        self.pf, self.path = pf, path
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        self.starts = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(np.asarray(sizes, dtype=np.int64), out=self.starts[1:])
        self.batch_rows = max(1, _READ_BATCH_BYTES // (4 * max(1, dim) + 16))
        self._cursors: dict[str, _Cursor] = {}

    def _checked(self, arrays: list[Any], g: int, name: str) -> list[Any]:
        if any(a.null_count for a in arrays):
            raise UnreadableInputError(f"column {name!r} holds nulls in row group {g}", path=str(self.path))
        return arrays

    def column(self, i: int, name: str) -> Any:
        """Column ``name`` of row group ``i`` as one pyarrow array (the small columns)."""
        try:
            col = self.pf.read_row_group(i, columns=[name]).column(0).combine_chunks()
        except Exception as e:  # pyarrow's ArrowInvalid / OSError on a damaged page
            raise UnreadableInputError(f"row group {i} is unreadable: {e}", path=str(self.path)) from e
        return self._checked([col], i, name)[0]

    def take(self, g: int, name: str, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of row group ``g``, column ``name``, as arrays in order."""
        cur = self._cursors.get(name)
        if cur is None or cur.group != g or cur.pos > lo:
            cur = self._cursors[name] = _Cursor(self.pf, g, name, self.batch_rows)
        try:
            out = self._checked(cur.take(lo, hi), g, name)
            if hi == self.starts[g + 1] - self.starts[g]:  # the group is read to its end
                del self._cursors[name]
            return out
        except UnreadableInputError:
            raise
        except Exception as e:  # ArrowInvalid / OSError on a damaged page, StopIteration on a short group
            self._cursors.pop(name, None)
            raise UnreadableInputError(f"row group {g} is unreadable: {e!r}", path=str(self.path)) from e

    def spans(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(group, first, stop) within each group that rows ``start:stop`` touch."""
        out = []
        g = int(np.searchsorted(self.starts, start, side="right")) - 1
        while start < stop and g < len(self.starts) - 1:
            lo, hi = int(self.starts[g]), int(self.starts[g + 1])
            out.append((g, start - lo, min(stop, hi) - lo))
            start = min(stop, hi)
            g += 1
        return out


class _Vectors:
    """The ``vector`` column as an ArraySource: ``rows(start, stop)`` reads just the groups it needs."""

    def __init__(self, groups: _Groups, n: int, dim: int) -> None:
        self.groups, self.dim = groups, dim
        self.shape = (n, dim)
        self.dtype = np.dtype(np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop, _ = slice(start, stop).indices(self.shape[0])
        out = np.empty((max(0, stop - start), self.dim), dtype=np.float32)
        at = 0
        for g, lo, hi in self.groups.spans(start, stop):
            for col in self.groups.take(g, "vector", lo, hi):
                flat = col.values.slice(col.offset * self.dim, len(col) * self.dim)
                if flat.null_count:
                    raise UnreadableInputError(f"column 'vector' holds null values in row group {g}",
                                               path=str(self.groups.path))
                out[at : at + len(col)] = _view(flat, np.float32).reshape(-1, self.dim)
                at += len(col)
        return out

    def to_numpy(self) -> np.ndarray:
        return self.rows(0, self.shape[0])


class _Bias:
    """The ``bias`` column as an ArraySource (4 bytes a row: read whole when asked)."""

    def __init__(self, groups: _Groups, n: int) -> None:
        self.groups = groups
        self.shape = (n,)
        self.dtype = np.dtype(np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop, _ = slice(start, stop).indices(self.shape[0])
        parts = [_view(a, np.float32) for g, lo, hi in self.groups.spans(start, stop)
                 for a in self.groups.take(g, "bias", lo, hi)]
        return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.empty(0, np.float32)

    def to_numpy(self) -> np.ndarray:
        return self.rows(0, self.shape[0])


class _Tokens(ChunkedStrings):
    """The ``token`` column, decoded a chunk at a time; ``encoded`` hands on its UTF-8 bytes."""

    def __init__(self, groups: _Groups, n: int) -> None:
        self.groups = groups
        super().__init__(n, self._decode)

    def encoded(self, start: int, stop: int) -> tuple[bytes, np.ndarray]:
        datas: list[bytes] = []
        offs: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        base = 0
        for col in (a for g, lo, hi in self.groups.spans(start, stop) for a in self.groups.take(g, "token", lo, hi)):
            bufs = col.buffers()
            o = np.frombuffer(bufs[1], dtype=np.int32)[col.offset : col.offset + len(col) + 1].astype(np.int64)
            datas.append(bytes(memoryview(bufs[2])[int(o[0]) : int(o[-1])]) if bufs[2] is not None else b"")
            offs.append(o[1:] - o[0] + base)
            base += int(o[-1] - o[0])
        return b"".join(datas), np.concatenate(offs)

    def _decode(self, start: int, stop: int) -> list[str]:
        raw, o = self.encoded(start, stop)
        try:
            text = raw.decode("utf-8")
            b = o.tolist()
            if len(text) == len(raw):
                return [text[x:y] for x, y in zip(b, b[1:], strict=False)]
            return [raw[x:y].decode("utf-8") for x, y in zip(b, b[1:], strict=False)]
        except UnicodeDecodeError as e:
            raise UnreadableInputError(f"column 'token' is not valid UTF-8 in rows {start}-{stop - 1}: {e}",
                                       path=str(self.groups.path)) from None


def _check_schema(pa: Any, schema: Any, dim: Any, path: Path) -> tuple[int, bool]:
    """(dim, has bias) of a file whose Arrow schema is the layout's; UnreadableInputError else."""
    names = list(schema.names)
    has_bias = "bias" in names
    want = ["row", "token", "vector", *(["bias"] if has_bias else []), "is_unknown"]
    if names != want:
        raise UnreadableInputError(f"columns are {names}, expected {want}", path=str(path))
    vt = schema.field("vector").type
    if not pa.types.is_fixed_size_list(vt) or vt.value_type != pa.float32():
        raise UnreadableInputError(f"column 'vector' is {vt}, expected fixed_size_list<float32>[{dim}]",
                                   path=str(path))
    expected = {"row": pa.int64(), "token": pa.string(), "bias": pa.float32(), "is_unknown": pa.bool_()}
    for name in want:
        if name != "vector" and schema.field(name).type != expected[name]:
            raise UnreadableInputError(f"column {name!r} is {schema.field(name).type}, expected {expected[name]}",
                                       path=str(path))
    if vt.list_size != dim:
        raise UnreadableInputError(f"column 'vector' has {vt.list_size} values a row, the manifest says {dim}",
                                   path=str(path))
    return int(vt.list_size), has_bias


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (surrogateescape): pyarrow takes UTF-8 paths only
        return False
    return True


def _sink(path: Path) -> Any:
    """Where pyarrow writes ``path``: the path itself, or a Python file where the name is not UTF-8."""
    return contextlib.nullcontext(str(path)) if _utf8(path) else open(path, "wb")


def _source(path: Path) -> Any:
    """What pyarrow reads ``path`` from: the path, or an open Python file where the name is not UTF-8."""
    return str(path) if _utf8(path) else open(path, "rb")  # noqa: SIM115 - lives as long as the ParquetFile


def read(path: Path) -> EmbeddingModel:
    """Read an embconv Parquet file back into the IR: the manifest from the key-value metadata,
    vectors, bias and tokens read a row group at a time on demand. ``row`` and ``is_unknown``
    are checked here (0 … n-1; true on the manifest's unknown row only), a group at a time."""
    pa, pq = _pyarrow()
    try:
        pf = pq.ParquetFile(_source(path), buffer_size=1 << 20, pre_buffer=False)  # column chunks read in pieces
        schema = pf.schema_arrow
    except Exception as e:  # ArrowInvalid, OSError: not Parquet, truncated footer …
        raise UnreadableInputError(f"not a readable Parquet file: {e}", path=str(path)) from e
    meta = pf.metadata.metadata or {}  # the file's key-value metadata (written with the footer)
    raw = meta.get(MANIFEST_KEY.encode())
    if raw is None:
        raise UnreadableInputError(f"no {MANIFEST_KEY} in the file's key-value metadata "
                                   f"(not written by embconv?)", path=str(path))
    manifest = read_manifest(raw, path, MANIFEST_KEY)
    if len(manifest["tables"]) != 1:
        raise UnreadableInputError(f"the manifest lists {len(manifest['tables'])} tables; a Parquet file holds one",
                                   path=str(path))
    tmeta = manifest["tables"][0]
    name = tmeta["name"]
    dim, has_bias = _check_schema(pa, schema, tmeta.get("dim"), path)
    n = int(pf.metadata.num_rows)
    if tmeta.get("rows") != n:
        raise UnreadableInputError(f"the file has {n} rows, its manifest says {tmeta.get('rows')}", path=str(path))
    if has_bias != (tmeta.get("bias_key") is not None):
        raise UnreadableInputError("the bias column and the manifest's bias_key disagree", path=str(path))
    vocab = tmeta.get("vocab")
    if vocab is not None and vocab.get("size", n) != n:
        raise UnreadableInputError(f"the file has {n} rows, its vocabulary {vocab.get('size')}", path=str(path))
    unk = vocab.get("unknown_index") if vocab is not None else None
    groups = _Groups(pf, path, dim)
    for g in range(len(groups.starts) - 1):  # row and is_unknown: 9 bytes a row, a group at a time
        lo, hi = int(groups.starts[g]), int(groups.starts[g + 1])
        rows = _view(groups.column(g, "row"), np.int64)
        if not np.array_equal(rows, np.arange(lo, hi, dtype=np.int64)):
            bad = int(np.flatnonzero(rows != np.arange(lo, hi))[0])
            raise UnreadableInputError(f"column 'row' holds {int(rows[bad])} at row {lo + bad}; expected 0 … {n - 1}"
                                       f" in order", path=str(path))
        col = groups.column(g, "is_unknown")
        bits = np.unpackbits(np.frombuffer(col.buffers()[1], dtype=np.uint8), bitorder="little",
                             count=col.offset + len(col))[col.offset :] if len(col) else np.empty(0, np.uint8)
        flags = np.flatnonzero(bits) + lo
        expected = [unk] if unk is not None and lo <= unk < hi else []
        if flags.tolist() != expected:
            raise UnreadableInputError(f"is_unknown marks rows {flags.tolist()[:5]} in rows {lo}-{hi - 1}; "
                                       f"the manifest's unknown row is {unk}", path=str(path))
    arrays = {name: (_Vectors(groups, n, dim), _Bias(groups, n) if has_bias else None)}
    tokens = {name: _Tokens(groups, n)} if vocab is not None else {}
    return model_from_output(manifest, arrays, tokens, path, CONTAINER)


def holds(model: EmbeddingModel, opts: dict) -> EmbeddingModel:
    """What a Parquet file holds of ``model``: everything (every row, the bias, the vocabulary)."""
    views = OrderedDict((name, t.view()) for name, t in model.tables.items())
    return EmbeddingModel(views, model.source, model.model, list(model.warnings))


FORMAT = register(Format(
    name=NAME,
    suffixes=(".parquet",),
    sniff=sniff,
    write=write,
    read=read,
    holds=holds,
    one_table_per_file=True,
    load_hint="pyarrow.parquet.read_table('{path}')  (or pandas / polars / DuckDB: README, 'Parquet')",
))

__all__ = ["FORMAT", "ROW_GROUP_BYTES", "group_rows", "read", "sniff", "write"]
