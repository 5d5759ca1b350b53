"""The registry of fastai generations. Each generation's module (``fastai07.py``, ``fastai1.py``,
``fastai2.py``) describes itself with a ``Generation`` and registers it; the loader and the
state-dict reader only ever iterate over the registry, so what one generation knows lives in
its own module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ir import GENERATIONS, Vocabulary, token_string

if TYPE_CHECKING:
    from ..ir import EmbeddingModel, EmbeddingTable
    from ..pickle import ModelFile
    from .architectures import Architecture, Keys
    from .detected import Detected

NA = "#na#"  # fastai's label for the row of missing and unseen values


@dataclass(frozen=True)
class Generation:
    """What embconv knows of one fastai generation.

    * ``name``: the manifest's ``source.generation``; ``label``: how a person calls it.
    * ``detect_export(root)``: the ``Detected`` of a file this generation exported (the root of
      its object graph), or None.
    * ``architectures(keys)``: the Architecture of a state dict whose key names follow a
      pattern this generation introduced, or None.
    * ``proves_keys(keys)``, ``proves_optimizer(opt)``, ``proves_torch(file)``: True when the
      key names, the ``learn.save`` optimizer state, or the torch that wrote the file (container,
      tensor-rebuild function) prove that this generation wrote it.
      A generation leaves out what it does not know: the defaults find nothing and prove nothing.
    * ``column_vocab(values, role, source)``: a training-data column's values labelled the way
      this generation numbered them (``values`` typed as pandas reads a CSV, None for NaN).
    * ``unknown_text_token``: the token unknown words map to in its text vocabularies.
    * ``no_vocab_hint`` / ``y_range_where``: what to tell a user whose file lacks a vocabulary /
      a y_range.
    * Inference (``converter.encode``), how this generation maps a DataFrame column to rows:
      ``inference_categories(model, table)``: the table's categories as this generation compares
      them with a column's values (fastai's own types; row ``offset + k`` is category k), as an
      ``InferenceCategories``; ``category_rows(categories, series)``: the rows of a pandas Series'
      values (unseen and NaN → the unknown row); ``fill_missing(model)``: FillMissing's tables,
      ``{"<cont>_na": "<cont>"}`` (the table holds ``isnull(<cont>)``), or None when the file does
      not say (then tables named ``<col>_na`` with ``#na#, False, True`` rows are taken as such).
    * Rebuilding labels from the training data (``--data``, ``rebuild.py``; spec §11), the
      generation's own rules: ``random_train_rows(n, seed, valid_pct)``: the training rows of its
      seeded random split; ``prepare_data(frame)``: the frame as its data processing saw it before
      splitting (fastai 2's ``df_shrink``); ``rebuild_column(train_values, role, source)``: a
      column's ``Rebuilt`` vocabulary from its training values (a pandas Series);
      ``vocab_from_full_data``: its vocabularies never depended on the split; ``na_tables``: it
      adds FillMissing's ``<cont>_na`` tables. A generation without ``rebuild_column`` cannot
      rebuild."""

    name: str
    label: str
    column_vocab: Callable[[Sequence[Any], str, str], Vocabulary]
    detect_export: Callable[[Any], Detected | None] = lambda root: None
    architectures: Callable[[Keys], Architecture | None] = lambda keys: None
    proves_keys: Callable[[Keys], bool] = lambda keys: False
    proves_optimizer: Callable[[dict], bool] = lambda opt: False
    proves_torch: Callable[[ModelFile], bool] = lambda mf: False
    unknown_text_token: str | None = None
    no_vocab_hint: str = ""
    y_range_where: str = "only exports store it"
    inference_categories: Callable[[EmbeddingModel, EmbeddingTable], InferenceCategories | None] = \
        lambda model, table: vocab_categories(table)
    category_rows: Callable[[InferenceCategories, Any], Any] = lambda cats, series: categorical_rows(cats, series)
    fill_missing: Callable[[EmbeddingModel], dict[str, str] | None] = lambda model: None
    random_train_rows: Callable[[int, int, float], Any] | None = None
    prepare_data: Callable[[Any], Any] = lambda frame: frame
    rebuild_column: Callable[[Any, str, str], Rebuilt] | None = None
    vocab_from_full_data: bool = False
    na_tables: bool = True


@dataclass(frozen=True)
class Rebuilt:
    """A vocabulary rebuilt from training data, with the typed ``categories`` (a pandas Index)
    that training values are numbered by: value ``categories[k]`` is row ``offset + k``."""

    vocab: Vocabulary
    categories: Any
    offset: int


@dataclass(frozen=True)
class InferenceCategories:
    """A table's categories as a generation compares them with data at inference: row
    ``offset + k`` is ``values[k]``; values matching none (and NaN) go to ``unknown`` (None: the
    table has no such row). ``by_string``: compare values' string forms (categories that are the
    string forms of typed training values, when the typed ones are not in the file)."""

    values: Any  # a list, or a numpy array of the training dtype
    offset: int
    unknown: int | None
    by_string: bool = False
    _index: list[Any] = field(default_factory=list, compare=False, repr=False)  # the cached pandas Index

    def index(self) -> Any:
        """``pandas.Index`` of the categories (built once), as ``pd.Categorical`` builds it."""
        if not self._index:
            import pandas as pd

            self._index.append(pd.CategoricalDtype(self.values).categories)
        return self._index[0]


def vocab_categories(table: EmbeddingTable) -> InferenceCategories | None:
    """Categories from a table's vocabulary: the tokens after the unknown row when it is row 0
    (fastai's ``#na#`` then the categories, codes + 1), else every token from row 0."""
    vocab = table.vocab
    if vocab is None:
        return None
    offset = 1 if vocab.unknown_index == 0 else 0
    values = list(vocab.tokens[offset:])
    strings = all(isinstance(v, str) for v in values)
    return InferenceCategories(_unique(values), offset, vocab.unknown_index, by_string=strings)


def typed_categories(table: EmbeddingTable) -> InferenceCategories | None:
    """``vocab_categories`` compared by value, never by string form (a generation whose
    vocabularies keep the training values' own types)."""
    cats = vocab_categories(table)
    return None if cats is None else InferenceCategories(cats.values, cats.offset, cats.unknown)


def file_root(model: EmbeddingModel) -> Any:
    """The object graph of the file the model was read from (None for an output or a model
    built in memory)."""
    mf = getattr(model, "_file", None)
    return getattr(mf, "root", None)


def _unique(values: list[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen) if len(seen) == len(values) else values


def categorical_rows(cats: InferenceCategories, series: Any) -> Any:
    """``pd.Categorical(series, categories=cats).codes + offset`` (how fastai 1 and 2 number a
    column at inference: NaN and unseen values get code -1, i.e. the unknown row), as int64.
    ``by_string`` compares string forms (NaN stays NaN). Unseen values become ``cats.unknown``
    (-1 when the table has no unknown row)."""
    import numpy as np

    if cats.by_string and not _all_strings(series):
        series = series.map(lambda v: v if isinstance(v, str) or is_nan(v) else token_string(v))
    codes = np.asarray(cats.index().get_indexer_for(series), dtype=np.int64)
    return _rows(codes, cats)


def _all_strings(series: Any) -> bool:
    import pandas as pd

    if series.dtype != object:
        return bool(pd.api.types.is_string_dtype(series.dtype))
    return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")


def _rows(codes: Any, cats: InferenceCategories) -> Any:
    import numpy as np

    missing = codes < 0
    rows = codes + cats.offset
    if missing.any():
        rows[missing] = cats.unknown if cats.unknown is not None else -1
    return rows.astype(np.int64, copy=False)


def own_codes_rows(cats: InferenceCategories, series: Any) -> Any:
    """For a pandas ``category`` column: its own codes + offset (fastai 2's ``_apply_cats``:
    ``c.cat.codes + 1`` — the column's categories, not the training ones); else as
    ``categorical_rows``."""
    import numpy as np
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        return _rows(np.asarray(series.cat.codes, dtype=np.int64), cats)
    return categorical_rows(cats, series)


_REGISTRY: dict[str, Generation] = {}


def register(generation: Generation) -> Generation:
    """Add a generation (its name must be one of the manifest's); registration order is the
    order in which the generations are asked."""
    if generation.name not in GENERATIONS:
        raise ValueError(f"{generation.name!r} is not a generation the manifest knows")
    _REGISTRY[generation.name] = generation
    return generation


def registered() -> list[Generation]:
    """Every registered generation, in registration order."""
    return list(_REGISTRY.values())


def get(name: str) -> Generation:
    """The generation called ``name``; ``unknown`` (and any name not registered) gets the
    generic description."""
    return _REGISTRY.get(name) or _unknown(name)


def first(test: Callable[[Generation], bool]) -> str | None:
    """The name of the first registered generation for which ``test`` is true, or None."""
    for g in _REGISTRY.values():
        if test(g):
            return g.name
    return None


def sorted_vocab(values: Sequence[Any], role: str, source: str) -> Vocabulary:
    """``#na#`` (NaN and unseen values) then the sorted distinct values: how fastai 1 and 2
    number a column (and so the rule for a file that does not say which of them wrote it)."""
    present = {v for v in values if not is_nan(v)}
    return Vocabulary([NA, *sorted(present, key=sort_key)], unknown_index=0, source=source)


def is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def sort_key(v: Any) -> tuple:
    # pandas sorts one dtype per column; mixed columns fall back to their string order.
    if isinstance(v, bool):
        return (0, int(v), "")
    if isinstance(v, (int, float)):
        return (0, v, "")
    return (1, 0, str(v))


def _unknown(name: str) -> Generation:
    label = "unknown (not stated in the file)" if name == "unknown" else name
    return Generation(name, label, column_vocab=sorted_vocab)


def unknown_text_tokens() -> list[str]:
    """The tokens unknown words may map to in a text vocabulary, the newest generation's first."""
    tokens = [g.unknown_text_token for g in reversed(_REGISTRY.values()) if g.unknown_text_token]
    return [*dict.fromkeys(tokens), "<unk>"]


def fill_missing_tables(model: EmbeddingModel) -> dict[str, str]:
    """FillMissing's tables of ``model``, ``{"<cont>_na": "<cont>"}``: as its generation's file
    declares them, or — where the file does not say — the tables shaped like FillMissing's
    (named ``<cont>_na``, rows ``#na#, False, True``)."""
    declared = get(model.source.generation).fill_missing(model)
    if declared is not None:
        return {t: c for t, c in declared.items() if t in model.tables}
    return {name: name[:-3] for name, t in model.tables.items()
            if name.endswith("_na") and t.vocab is not None and list(t.vocab.strings) == [NA, "False", "True"]}
