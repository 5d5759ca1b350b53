"""Entity-embedding features: a dataset's categorical columns replaced by their vectors.

``encode(model, df)`` maps a DataFrame in memory; ``encode_file(model, data, out)`` streams a
CSV or Parquet file to a CSV or Parquet file in batches, in bounded memory. This module is
generic streaming machinery: how a value maps to a row is asked of the model's generation
(``loaders.generations``: ``inference_categories``, ``category_rows``, ``fill_missing``).

Each categorical column with a table becomes ``<col>_0 … <col>_{d-1}`` (float32) in its place;
a FillMissing table ``<cont>_na`` is rebuilt from ``isnull(<cont>)`` and its vectors follow the
continuous column (or replace an ``<cont>_na`` column the data already has). Every other column
passes through unchanged, in order.

CSV typing. fastai saw the CSV as ``pandas.read_csv`` typed it, and a value's type decides its
row (v2 compares typed values). pandas types a whole file by parsing it in chunks and unifying
the chunks' dtypes as ``concat`` does (int + float → float, bool + object → object). A batch
reader cannot know a later batch's types, so ``encode_file`` reads a CSV twice with pandas'
own parser (``read_csv(chunksize=…)``): pass 1 records each batch's dtype per column and unifies
them with pandas' rule; pass 2 casts every batch to those dtypes. Both passes hold one batch at a
time. (pyarrow's CSV inference differs from pandas': other null markers, ``" 7"`` is not an int,
a later batch that does not fit the first's type is an error.) A column mixing numbers and text
is typed per chunk by pandas itself (its ``DtypeWarning``): the report warns about it.
Parquet columns carry their types; only int/bool columns with nulls change (pandas reads them
as float64/object): pass 1 reads just those columns. Dictionary columns are read as their values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UnreadableInputError, UsageError
from .loaders import generations

if TYPE_CHECKING:
    import pandas as pd

    from .ir import EmbeddingModel, EmbeddingTable
    from .loaders.generations import InferenceCategories

DEFAULT_BATCH_ROWS = 65_536
DATA_EXTRA = "needs the data extra: pip install 'embconv[data]'"
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _need_data(what: str) -> None:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(f"{what} {DATA_EXTRA}") from None


@dataclass
class ColumnReport:
    """One encoded table: the data column it read, the output columns, and how many values
    went to the unknown row because they were not in the vocabulary (``unseen``) or missing
    (``missing``: NaN/None)."""

    table: str
    column: str
    outputs: list[str]
    dim: int
    fill_missing: bool = False
    unseen: int = 0
    missing: int = 0

    def to_json(self) -> dict:
        return {"table": self.table, "column": self.column, "fill_missing": self.fill_missing, "dim": self.dim,
                "outputs": [self.outputs[0], self.outputs[-1]] if self.outputs else [],
                "unseen": self.unseen, "missing": self.missing}


@dataclass
class EncodeReport:
    data: str
    out: str
    rows: int = 0
    batches: int = 0
    columns: list[ColumnReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"data": self.data, "out": self.out, "rows": self.rows, "batches": self.batches,
                "columns": [c.to_json() for c in self.columns], "warnings": list(self.warnings)}


@dataclass
class _Target:
    table: EmbeddingTable
    column: str           # the data column read
    at: str               # the data column the vectors replace, or follow
    replace: bool
    from_null: bool       # FillMissing: the values are isnull(column)
    cats: InferenceCategories
    rule: Any
    weight: np.ndarray
    names: list[str]
    report: ColumnReport


# ---- the plan: which table encodes which column ------------------------------------------------
def _parse_columns(columns: Any) -> dict[str, str] | None:
    """None, or {table: data column} from a mapping, ``["TABLE=COL" | "NAME", …]`` or ``"A,B=C"``."""
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [c for c in columns.split(",") if c.strip()]
    if isinstance(columns, Mapping):
        return {str(k): str(v) for k, v in columns.items()}
    out: dict[str, str] = {}
    for item in columns:
        table, _, col = str(item).partition("=")
        out[table.strip()] = (col or table).strip()
    if not out:
        raise UsageError("columns is empty: name at least one table or column")
    return out


def _plan(model: EmbeddingModel, data_columns: Sequence[str], columns: Any) -> list[_Target]:
    generation = generations.get(model.source.generation)
    have = list(data_columns)
    present = set(have)
    na = generations.fill_missing_tables(model)
    wanted = _parse_columns(columns)
    usable = {n: t for n, t in model.tables.items() if t.role != "token"}
    pairs: list[tuple[str, str, bool]] = []  # (table, data column, from_null)
    if wanted is None:
        for name in usable:
            if name in na and na[name] in present:
                pairs.append((name, na[name], True))
            elif name in present:
                pairs.append((name, name, False))
        if not pairs:
            tables = ", ".join(usable) or "none"
            raise UsageError(
                f"no data column is named like a table of the model (tables: {tables}; data columns: "
                f"{', '.join(have[:12])}{' …' if len(have) > 12 else ''}): the file does not name its columns, so say "
                f"which data column each table encodes: columns={{'{next(iter(usable), 'cat_0')}': 'COLUMN', …}} "
                "(CLI: --columns TABLE=COLUMN,…)")
    else:
        for table, col in wanted.items():
            if table not in usable:
                hint = "it is a text table" if table in model.tables else f"tables: {', '.join(usable) or 'none'}"
                raise UsageError(f"columns names {table!r}, which is not a categorical table of the model ({hint})")
            if table in na and col == table and na[table] in present:
                pairs.append((table, na[table], True))
            elif col in present:
                pairs.append((table, col, False))
            else:
                raise UsageError(f"table {table!r}: the data has no column {col!r} (data columns: {', '.join(have[:12])})")
    targets: list[_Target] = []
    seen_cols: dict[str, str] = {}
    for table_name, col, from_null in pairs:
        tab = usable[table_name]
        cats = generation.inference_categories(model, tab)
        if cats is None:
            raise UsageError(f"table {table_name!r} has no vocabulary: supply one (--vocab {table_name}=SPEC) "
                             "to map values to rows")
        if from_null:
            at = table_name if table_name in present else col
            replace = table_name in present
            prefix = table_name
        else:
            at, replace, prefix = col, True, col
        if replace and at in seen_cols:
            raise UsageError(f"data column {at!r} is encoded twice (tables {seen_cols[at]!r} and {table_name!r})")
        seen_cols[at] = table_name
        w = np.asarray(tab.weight, dtype=np.float32)
        names = [f"{prefix}_{j}" for j in range(tab.dim)]
        report = ColumnReport(table_name, col, names, tab.dim, fill_missing=from_null)
        targets.append(_Target(tab, col, at, replace, from_null, cats, generation.category_rows, w, names, report))
    replaced = {t.at for t in targets if t.replace}
    kept = [c for c in have if c not in replaced]
    out_names = [*kept, *(n for t in targets for n in t.names)]
    dup = {n for n in out_names if out_names.count(n) > 1}
    if dup:
        raise UsageError(f"output column(s) {', '.join(sorted(dup))} would appear twice: rename the data column(s)")
    return targets


def _layout(targets: list[_Target], data_columns: Sequence[str]) -> list[tuple[str, _Target | None]]:
    """Output order: each data column (or the vectors replacing it), then vectors that follow it."""
    by_at: dict[str, list[_Target]] = {}
    for t in targets:
        by_at.setdefault(t.at, []).append(t)
    out: list[tuple[str, _Target | None]] = []
    for c in data_columns:
        ts = by_at.get(c, [])
        if not any(t.replace for t in ts):
            out.append((c, None))
        for t in sorted(ts, key=lambda t: not t.replace):
            out.append((c, t))
    return out


# ---- mapping one batch ---------------------------------------------------------------------------
def _rows(t: _Target, frame: pd.DataFrame) -> np.ndarray:
    series = frame[t.column]
    if t.from_null:
        series = series.isna()
    rows = np.asarray(t.rule(t.cats, series), dtype=np.int64)
    nulls = np.zeros(len(rows), dtype=bool) if t.from_null else np.asarray(series.isna())
    unknown = t.cats.unknown if t.cats.unknown is not None else -1
    at_unknown = rows == unknown
    if at_unknown.any():
        n_missing = int(np.count_nonzero(at_unknown & nulls))
        t.report.missing += n_missing
        t.report.unseen += int(np.count_nonzero(at_unknown)) - n_missing
    if len(rows) and int(rows.max(initial=-1)) >= t.weight.shape[0]:
        raise UsageError(f"column {t.column!r}: its category codes go past table {t.table.name!r} "
                         f"({t.weight.shape[0]} rows): its pandas categories are not the model's")
    return rows


def _vectors(t: _Target, frame: pd.DataFrame) -> np.ndarray:
    """(dim, n) float32, C order: row j is output column j."""
    rows = _rows(t, frame)
    out = np.take(t.weight.T, rows, axis=1) if t.weight.shape[1] > 1 else t.weight[rows].T
    out = np.ascontiguousarray(out, dtype=np.float32)
    if t.cats.unknown is None and (rows < 0).any():  # no row for unseen values: NaN
        out[:, rows < 0] = np.nan
    return out


def encode(model: EmbeddingModel, df: pd.DataFrame, columns: Any = None) -> pd.DataFrame:
    """``df`` with each categorical column that has a table replaced by its vectors
    (``<col>_0 … <col>_{d-1}``, float32), mapped as the model's fastai generation maps values at
    inference; other columns unchanged, in order. ``columns``: the tables to use (names, or
    ``{table: data column}`` / ``["TABLE=COL", …]`` for a model whose tables are ``cat_0`` …)."""
    _need_data("encode")
    import pandas as pd

    data_columns = [str(c) for c in df.columns]
    if len(set(data_columns)) != len(data_columns):
        raise UsageError("the DataFrame has duplicate column names")
    targets = _plan(model, data_columns, columns)
    frame = df.copy(deep=False)
    frame.columns = pd.Index(data_columns)
    pieces: list[Any] = []
    for col, t in _layout(targets, data_columns):
        if t is None:
            pieces.append(frame[[col]])
        else:
            vecs = _vectors(t, frame)
            pieces.append(pd.DataFrame(vecs.T, columns=t.names, index=df.index, copy=False))
    out = pd.concat(pieces, axis=1) if pieces else frame.iloc[:, :0]
    encode.last_report = [t.report for t in targets]  # type: ignore[attr-defined]
    return out


def encode_report(model: EmbeddingModel, df: pd.DataFrame, columns: Any = None) -> tuple[pd.DataFrame, list[ColumnReport]]:
    """``encode`` and its per-column counts of unseen and missing values."""
    out = encode(model, df, columns)
    return out, list(encode.last_report)  # type: ignore[attr-defined]


# ---- files ---------------------------------------------------------------------------------------
def _kind(path: str, role: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in _SUFFIXES:
        raise UsageError(f"{path}: {role} must be .csv or .parquet (from its extension)")
    return _SUFFIXES[ext]


def _unify(samples: dict[str, Any]) -> Any:
    import pandas as pd

    values = list(samples.values())
    return values[0].dtype if len(values) == 1 else pd.concat(values, ignore_index=True).dtype


def _csv_dtypes(path: str, batch_rows: int, warnings: list[str]) -> dict[str, Any]:
    import pandas as pd

    samples: dict[str, dict[str, Any]] = {}
    kinds: dict[str, set[str]] = {}
    with pd.read_csv(path, chunksize=batch_rows) as reader:
        for chunk in reader:
            for c in chunk.columns:
                s = chunk[c]
                d = samples.setdefault(str(c), {})
                if str(s.dtype) not in d:
                    d[str(s.dtype)] = s.iloc[:1] if len(s.dropna()) == 0 else s.loc[[s.first_valid_index()]]
                if s.dtype == object:
                    kinds.setdefault(str(c), set()).update(
                        {"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
                         for v in s.dropna().iloc[:1000]})
    out = {c: _unify(d) for c, d in samples.items()}
    for c, ks in kinds.items():
        if "number" in ks and "str" in ks:
            warnings.append(f"column {c!r} mixes numbers and text: pandas types such a column chunk by chunk "
                            "(its DtypeWarning), so its values are as read in batches")
    return out


def _csv_batches(path: str, batch_rows: int, dtypes: dict[str, Any]) -> Iterator[tuple[pd.DataFrame, Any]]:
    import pandas as pd

    with pd.read_csv(path, chunksize=batch_rows) as reader:
        for chunk in reader:
            chunk.columns = pd.Index([str(c) for c in chunk.columns])
            for c in chunk.columns:
                want = dtypes.get(c)
                if want is not None and chunk[c].dtype != want:
                    chunk[c] = chunk[c].astype(want)
            yield chunk, None


def _parquet_batches(path: str, batch_rows: int, needed: set[str] | None) -> Iterator[tuple[pd.DataFrame, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow
    int_bool = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)]
    int_bool = [c for c in int_bool if needed is None or c in needed]
    has_null: set[str] = set()
    if int_bool:  # pandas reads an int/bool column with nulls as float64/object: find them first
        for b in pf.iter_batches(batch_size=max(batch_rows, 1 << 16), columns=int_bool):
            for c, arr in zip(b.schema.names, b.columns):
                if arr.null_count:
                    has_null.add(c)
    for b in pf.iter_batches(batch_size=batch_rows):
        cols = {}
        for name, arr in zip(b.schema.names, b.columns):
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            cols[name] = arr
        frame_cols = [n for n in cols if needed is None or n in needed]
        frame = pa.table({n: cols[n] for n in frame_cols}).to_pandas() if frame_cols else None
        if frame is not None:
            for c in frame_cols:
                if c in has_null:
                    kind = np.dtype(np.float64) if pa.types.is_integer(cols[c].type) else np.dtype(object)
                    if frame[c].dtype != kind:
                        frame[c] = frame[c].astype(kind)
        yield frame, (b, cols)


class _Writer:
    def __init__(self, path: str, kind: str) -> None:
        self.path, self.kind = path, kind
        self.schema: Any = None
        self.writer: Any = None

    def write(self, arrays: list[Any], names: list[str]) -> None:
        import pyarrow as pa

        if self.writer is None:
            self.schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays)])
            if self.kind == "csv":
                import pyarrow.csv as pcsv

                self.writer = pcsv.CSVWriter(self.path, self.schema)
            else:
                import pyarrow.parquet as pq

                # Dictionary-encoding the vectors' random floats only costs time (3x the write).
                keep = [f.name for f in self.schema if not pa.types.is_floating(f.type)]
                self.writer = pq.ParquetWriter(self.path, self.schema, use_dictionary=keep or False)
        arrays = [a if a.type == f.type else _cast(a, f) for a, f in zip(arrays, self.schema)]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _cast(arr: Any, f: Any) -> Any:
    try:
        return arr.cast(f.type)
    except Exception as e:  # noqa: BLE001 — pyarrow raises several kinds
        raise UnreadableInputError(f"column {f.name!r} changes type between batches ({f.type} → {arr.type}): {e}") from None


def encode_file(model: EmbeddingModel, data_path: str | os.PathLike, out_path: str | os.PathLike, *,
                columns: Any = None, batch_rows: int = DEFAULT_BATCH_ROWS) -> EncodeReport:
    """Stream ``data_path`` (CSV or Parquet, by extension) to ``out_path`` (CSV or Parquet) with
    the categorical columns replaced by their vectors, ``batch_rows`` rows at a time. The output
    is written to a temporary file beside ``out_path`` and renamed into place when complete."""
    _need_data("encode")
    import pyarrow as pa

    data, out = os.fspath(data_path), os.fspath(out_path)
    in_kind, out_kind = _kind(data, "DATA"), _kind(out, "OUT")
    if batch_rows < 1:
        raise UsageError("batch_rows must be at least 1")
    if not os.path.exists(data):
        raise UsageError(f"{data}: no such file")
    report = EncodeReport(data, out)
    if in_kind == "csv":
        import pandas as pd

        header = [str(c) for c in pd.read_csv(data, nrows=0).columns]
    else:
        import pyarrow.parquet as pq

        header = list(pq.ParquetFile(data).schema_arrow.names)
    targets = _plan(model, header, columns)
    report.columns = [t.report for t in targets]
    layout = _layout(targets, header)
    if in_kind == "csv":
        batches = _csv_batches(data, batch_rows, _csv_dtypes(data, batch_rows, report.warnings))
    else:
        batches = _parquet_batches(data, batch_rows, {t.column for t in targets})
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)) or ".", f".{os.path.basename(out)}.embconv-tmp")
    writer = _Writer(tmp, out_kind)
    try:
        for frame, raw in batches:
            arrays: list[Any] = []
            names: list[str] = []
            for col, t in layout:
                if t is None:
                    if raw is not None:
                        arrays.append(raw[1][col])
                    else:
                        arrays.append(pa.Array.from_pandas(frame[col]))
                    names.append(col)
                else:
                    vecs = _vectors(t, frame)
                    arrays.extend(pa.array(v) for v in vecs)
                    names.extend(t.names)
            if arrays:
                writer.write(arrays, names)
            report.rows += len(frame) if frame is not None else raw[0].num_rows
            report.batches += 1
        if writer.writer is None:  # no rows: still write the header / schema
            import pandas as pd

            empty = pd.DataFrame({c: [] for c in header})
            writer.write([pa.array([], type=pa.float32()) if t is not None else pa.Array.from_pandas(empty[c])
                          for c, t in layout for _ in (t.names if t is not None else [c])],
                         [n for c, t in layout for n in (t.names if t is not None else [c])])
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return report
