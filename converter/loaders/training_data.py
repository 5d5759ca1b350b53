"""Training data as the user gave it to fastai: a CSV read exactly as ``pandas.read_csv`` reads it
(by pandas itself), or a Parquet file. Generic: which rows and columns build a vocabulary is each
generation's rule."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import UnreadableInputError, UsageError

if TYPE_CHECKING:
    import pandas


def pandas_module(what: str) -> Any:
    """The pandas module, or UsageError naming the extra that brings it."""
    try:
        import pandas as pd
    except ImportError:
        raise UsageError(f"{what} needs the data extra: pip install 'embconv[data]'") from None
    return pd


def read_frame(path: str | os.PathLike, columns: list[str] | None = None) -> pandas.DataFrame:
    """The DataFrame in ``path`` (Parquet by its magic bytes, else CSV as ``pandas.read_csv``
    reads it with its defaults), only ``columns`` when given (UsageError naming a missing one)."""
    p = os.fspath(path)
    pd = pandas_module(f"reading {p}")
    try:
        with open(p, "rb") as f:
            is_parquet = f.read(4) == b"PAR1"
        if is_parquet:
            import pyarrow.parquet as pq

            available = list(pq.read_schema(p).names)
        else:
            available = list(pd.read_csv(p, nrows=0).columns)
        missing = [c for c in columns or [] if c not in available]
        if missing:
            raise UsageError(f"{p}: no column {missing[0]!r} (columns: {', '.join(map(str, available))})")
        if is_parquet:
            return pd.read_parquet(p, columns=columns)
        return pd.read_csv(p, usecols=columns)
    except (UsageError, UnreadableInputError):
        raise
    except UnicodeDecodeError as e:
        raise UnreadableInputError(f"{p}: not UTF-8 text ({e})") from None
    except OSError as e:
        raise UnreadableInputError(f"{p}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # pandas' and pyarrow's parser errors have no common base
        raise UnreadableInputError(f"{p}: not a CSV or Parquet file pandas reads ({type(e).__name__}: {e})") from None


def column_values(path: str | os.PathLike, column: str) -> list[Any]:
    """One column's values as Python scalars typed as pandas read them; None for NaN/missing."""
    series = read_frame(path, [column])[column]
    return [None if _missing(v) else v for v in series.tolist()]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType")
