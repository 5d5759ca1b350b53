"""Labels for a file that carries none (``learn.save``), rebuilt from the data it was trained on
(design.md §4 DATA OPTIONS, spec fastai-formats §11).

The user names the DataFrame they gave fastai, how fastai split it and which columns played which
part; the generation that wrote the file rebuilds each table's vocabulary by its own rules
(``Generation.rebuild_column`` and friends). This module is generic: it reads the data, asks the
generation(s), and proves or refuses the result:

* every rebuilt vocabulary must fit its table's rows (sizes can prove a labelling wrong, never
  right); a mismatch is an error that names both sizes and the likely cause;
* without a split, only vocabularies for which every value of the data has a row are accepted:
  training values are a subset of the data's, so equal counts mean equal sets (and sorted rules
  then give the same order);
* for collab dot models whose data has the ratings, the model's scores on the training rows must
  follow the ratings far better than under shuffled labels (``ratings_check``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnreadableInputError, UsageError
from ..ir import EmbeddingModel, EmbeddingTable, Vocabulary
from . import generations
from .generations import Generation, Rebuilt
from .ratings_check import RatingsCheck, check_ratings
from .splits import Split, parse_split
from .training_data import pandas_module, read_frame

_COLLAB = ("collab-dot", "collab-nn")


@dataclass
class TrainingData:
    """What the user says a model was trained on: ``data`` (a CSV/Parquet path or a pandas
    DataFrame, as given to fastai), ``split`` (``Split`` or its text), and the columns: collab
    ``user``/``item``/``rating`` (default, as fastai: the first three columns), tabular ``cat``
    and ``cont`` (cat_names / cont_names as given to fastai)."""

    data: Any
    split: Any = None
    user: str | None = None
    item: str | None = None
    rating: str | None = None
    cat: Sequence[str] | None = None
    cont: Sequence[str] | None = None


@dataclass
class _Frame:
    frame: Any  # pandas.DataFrame
    name: str  # what error lines and vocab.source call it
    sha256: str | None


@dataclass
class _Labels:
    """One generation's labelling of the model's tables (in table order)."""

    generation: Generation
    tables: list[EmbeddingTable]
    columns: list[str]  # the data column (or FillMissing's ``<cont>_na``) of each table
    rebuilt: list[Rebuilt]
    train_rows: np.ndarray
    frame: Any  # the frame as the generation saw it (after prepare_data)
    check: RatingsCheck | None = None
    proved: bool = False  # by sizes alone: every value of the data has a row
    unchecked: bool = False  # fits the sizes, but nothing could check the split
    notes: list[str] = field(default_factory=list)

    def strings(self) -> list[list[str]]:
        return [list(r.vocab.strings) for r in self.rebuilt]


class _Mismatch(Exception):
    """This generation's labelling does not fit the file (the message says why)."""


def apply_training_data(model: EmbeddingModel, spec: TrainingData) -> None:
    """Label ``model``'s tables from the training data, or raise: UsageError for what the user
    must say differently, UnreadableInputError (exit 3) when the data cannot be what the model was
    trained on as described."""
    kind = model.model.kind
    if kind not in (*_COLLAB, "tabular"):
        raise UsageError(f"--data rebuilds the labels of collab and tabular tables; this is a {kind} model "
                         "(text vocabularies come from the tokenizer: supply itos.pkl with --vocab)")
    split = parse_split(spec.split)
    data = _read(spec.data)
    tables, columns = _roles(model, spec, data)
    rating = _rating_column(model, spec, data, columns)
    candidates = _candidates(model)
    found: list[_Labels] = []
    failures: list[tuple[Generation, str]] = []
    for g in candidates:
        try:
            found.append(_label(g, data, split, tables, columns, spec, rating))
        except _Mismatch as e:
            failures.append((g, str(e)))
    if not found:
        # The most telling reason first: a training-split hint beats a generation whose rules ignore the split.
        failures.sort(key=lambda f: (f[0].vocab_from_full_data, "--split seed=S" not in f[1]))
        g, why = failures[0]
        if len(failures) > 1 and len({w for _, w in failures}) > 1:
            why += f" (also under the rules of {', '.join(f.label for f, _ in failures[1:])})"
        raise UnreadableInputError(f"--data {data.name}: {why}")
    chosen = _choose(model, found, rating, split, data)
    _attach(model, chosen, split, data)


def _read(data: Any) -> _Frame:
    pd = pandas_module("--data")
    if isinstance(data, pd.DataFrame):
        return _Frame(data, "the DataFrame", None)
    path = os.fspath(data)
    if not os.path.isfile(path):
        raise UsageError(f"--data {path}: no such file")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return _Frame(read_frame(path), os.path.basename(path), h.hexdigest())


def _column(data: _Frame, name: str, flag: str) -> str:
    if name not in data.frame.columns:
        cols = ", ".join(map(str, data.frame.columns))
        raise UsageError(f"{flag} {name}: {data.name} has no such column (columns: {cols})")
    return name


def _roles(model: EmbeddingModel, spec: TrainingData, data: _Frame) -> tuple[list[EmbeddingTable], list[str]]:
    """The tables to label and, for each, the data column it was built from (tabular:
    ``<cont>_na`` names stand for FillMissing's tables and are settled per generation)."""
    frame_columns = [str(c) for c in data.frame.columns]
    if model.model.kind in _COLLAB:
        users = [t for t in model.tables.values() if t.role == "user"]
        items = [t for t in model.tables.values() if t.role == "item"]
        if len(users) != 1 or len(items) != 1:
            raise UsageError("--data: this collab model does not have one user and one item table")
        if len(frame_columns) < 2 and (spec.user is None or spec.item is None):
            raise UsageError(f"--data {data.name}: a collab frame needs a user and an item column")
        user = _column(data, spec.user if spec.user is not None else frame_columns[0], "--user")
        item = _column(data, spec.item if spec.item is not None else frame_columns[1], "--item")
        if user == item:
            raise UsageError(f"--user and --item are both {user}")
        return [users[0], items[0]], [user, item]
    if spec.cat is None:
        raise UsageError("--data with a tabular model needs --cat COL,… (the cat_names given to fastai, in "
                         "their order) and --cont COL,… when it had continuous columns")
    cats = [_column(data, c, "--cat") for c in spec.cat]
    for c in spec.cont or []:
        _column(data, c, "--cont")
    tables = [t for t in model.tables.values() if t.role == "category"]
    return tables, cats


def _rating_column(model: EmbeddingModel, spec: TrainingData, data: _Frame, columns: list[str]) -> str | None:
    """The ratings of a collab model (fastai's default: the third column), or None."""
    if model.model.kind not in _COLLAB:
        return None
    if spec.rating is not None:
        return _column(data, spec.rating, "--rating")
    frame_columns = [str(c) for c in data.frame.columns]
    if spec.user is None and spec.item is None and len(frame_columns) >= 3:
        return frame_columns[2]
    rest = [c for c in frame_columns[:3] if c not in columns]
    return rest[0] if len(frame_columns) >= 3 and rest else None


def _candidates(model: EmbeddingModel) -> list[Generation]:
    """The generation that wrote the file, or — when the file does not say — every generation
    that can rebuild labels."""
    known = generations.get(model.source.generation)
    if known.rebuild_column is not None:
        return [known]
    if model.source.generation != "unknown":
        raise UsageError(f"--data: embconv cannot rebuild the labels of a {known.label} file")
    return [g for g in generations.registered() if g.rebuild_column is not None]


def _train_rows(g: Generation, n: int, split: Split) -> np.ndarray:
    if g.vocab_from_full_data or split.kind in ("none", "unknown"):
        return np.arange(n)
    if split.kind == "valid_idx":
        return np.flatnonzero(~split.valid_mask(n))
    if g.random_train_rows is None:
        raise _Mismatch(f"{g.label} has no seeded random split to rebuild")
    return np.asarray(g.random_train_rows(n, int(split.seed or 0), split.valid_pct))


def _label(g: Generation, data: _Frame, split: Split, tables: list[EmbeddingTable], columns: list[str],
           spec: TrainingData, rating: str | None) -> _Labels:
    needed = list(dict.fromkeys([*columns, *(spec.cont or []), *([rating] if rating else [])]))
    frame = g.prepare_data(data.frame[needed])
    rows = _train_rows(g, len(frame), split)
    all_columns, rebuilt = _rebuild(g, frame, rows, tables, columns, spec, _source(data, split, g))
    if len(all_columns) != len(tables):
        raise _Mismatch(_count_message(g, tables, columns, all_columns, split))
    for t, c, r in zip(tables, all_columns, rebuilt):
        if len(r.vocab) != t.rows:
            raise _Mismatch(_size_message(g, t, c, r, tables, rebuilt, all_columns, split))
    labels = _Labels(g, tables, all_columns, rebuilt, rows, frame)
    # Training values are a subset of the data's: when the whole data gives every table exactly
    # its rows, any split gives the same labels, so they hold whatever the split was.
    if len(rows) == len(frame):
        labels.proved = True
    else:
        full_columns, full = _rebuild(g, frame, np.arange(len(frame)), tables, columns, spec, "")
        labels.proved = full_columns == all_columns and all(len(r.vocab) == t.rows for r, t in zip(full, tables))
    return labels


def _rebuild(g: Generation, frame: Any, rows: np.ndarray, tables: list[EmbeddingTable], columns: list[str],
             spec: TrainingData, source: str) -> tuple[list[str], list[Rebuilt]]:
    """(the column of each table, its rebuilt vocabulary) from the given training rows."""
    assert g.rebuild_column is not None
    train = frame.iloc[rows]
    all_columns = list(columns)
    series = [train[c] for c in columns]
    if model_is_tabular(tables) and g.na_tables:
        for c in spec.cont or []:
            missing = train[c].isna()
            if missing.any():
                all_columns.append(f"{c}_na")
                series.append(missing)
    roles = [t.role for t in tables] + ["category"] * max(0, len(series) - len(tables))
    return all_columns, [g.rebuild_column(s, role, f"{source} column {c}") for s, role, c in zip(series, roles, all_columns)]


def model_is_tabular(tables: list[EmbeddingTable]) -> bool:
    return all(t.role == "category" for t in tables)


def _count_message(g: Generation, tables: list[EmbeddingTable], columns: list[str], all_columns: list[str],
                   split: Split) -> str:
    na = all_columns[len(columns):]
    fill = f" and FillMissing's {', '.join(na)}" if na else ""
    where = "the training rows" if split.kind not in ("none", "unknown") else "the data"
    return (f"--cat names {len(columns)} column(s){fill} ({len(all_columns)} tables from {where} under "
            f"{g.label} rules) but the file has {len(tables)} category tables: give --cat in the order given "
            "to fastai, and --cont for the continuous columns (each with a NaN in the training rows adds a "
            "<col>_na table)")


def _size_message(g: Generation, table: EmbeddingTable, column: str, rebuilt: Rebuilt, tables: list[EmbeddingTable],
                  all_rebuilt: list[Rebuilt], all_columns: list[str], split: Split) -> str:
    n = len(rebuilt.vocab)
    rows_of = f"the training rows of --split {split}" if split.kind in ("seed", "valid_idx") else "the data"
    head = (f"{rows_of} give column {column} {n:,} rows under {g.label} rules"
            f"{' (with #na#)' if rebuilt.offset else ''} but table {table.name} has {table.rows:,} rows")
    others = [t.name for t in tables if t is not table and t.rows == n]
    if others and not (split.kind == "unknown" and n > table.rows):
        flags = "--user/--item" if table.role in ("user", "item") else "--cat in fastai's order"
        return f"{head}; it fits table {others[0]} ({n:,} rows): the columns may be in another order ({flags})"
    if split.kind == "unknown" and n > table.rows and not g.vocab_from_full_data:
        return (f"{head}: fastai fits the vocabulary on the training split, so a table may lack values that "
                "only the validation rows have; pass --split seed=S (the seed given to from_df / RandomSplitter, "
                "with valid_pct=P if not 0.2), --split valid_idx=A:B or --split none. A random split made "
                "without a seed cannot be rebuilt")
    if split.kind in ("seed", "valid_idx") and not g.vocab_from_full_data:
        return (f"{head}: not the split fastai made (another seed or valid_pct?), or not the "
                "data it was given")
    return f"{head}: not the data this model was trained on, or not these columns"


def _source(data: _Frame, split: Split, g: Generation) -> str:
    sha = f" sha256:{data.sha256}" if data.sha256 else ""
    if g.vocab_from_full_data:
        how = "the full data"
    elif split.kind == "unknown":
        how = "split not given (proved: every value of the data has a row)"
    else:
        how = f"split {split}"
    return f"data:{data.name}{sha} {how} ({g.label} rule)"


def _choose(model: EmbeddingModel, found: list[_Labels], rating: str | None, split: Split, data: _Frame) -> _Labels:
    """The labelling to keep: checked against the ratings where there are any; of several
    generations', the one the ratings prove, or the one they all agree on."""
    if rating is not None:
        for lab in found:
            lab.check = check_ratings(model, lab.tables, lab.rebuilt, lab.frame, lab.train_rows, lab.columns, rating)
    distinct: dict[tuple, _Labels] = {}
    for lab in found:
        distinct.setdefault(tuple(tuple(s) for s in lab.strings()), lab)
    passing = [lab for lab in distinct.values() if lab.check is None or lab.check.beats_chance and
               (lab.proved or lab.check.fits_rows)]
    if len(distinct) > 1:
        if rating is not None and len(passing) == 1:
            return passing[0]
        names = " and ".join(lab.generation.label for lab in distinct.values())
        raise UnreadableInputError(f"--data {data.name}: the file does not say which fastai wrote it, and {names} "
                                   "would label its rows differently from this data; the labels cannot be proved")
    chosen = next(iter(distinct.values()))
    if len(found) > 1:
        chosen.notes.append(f"the file does not say which fastai wrote it; {', '.join(lab.generation.label for lab in found)} "
                            "rules give the same labels")
    check = chosen.check
    if chosen.proved:
        if check is not None and not check.beats_chance:
            chosen.notes.append(f"the model's scores do not follow the ratings ({check}): it looks untrained (an "
                                "lr_find leftover?); the labels stand, as every value of the data has a row")
    elif check is not None:
        if not check.beats_chance:
            raise UnreadableInputError(f"--data {data.name} --split {split}: the labels do no better than chance "
                                       f"({check}): not the split or data fastai used")
        if not check.fits_rows:
            raise UnreadableInputError(f"--data {data.name} --split {split}: the labels are off by a row or more "
                                       f"in places ({check}): not the split fastai made (another seed or valid_pct?)")
    else:
        tables = ", ".join(chosen.columns)
        chosen.notes.append(f"the labels of {tables} follow from --split {split} and fit every table's rows, but sizes "
                            "cannot prove a split and this model has no ratings to check them against: make sure the "
                            "split is the one fastai made")
        chosen.unchecked = True
    return chosen


def _attach(model: EmbeddingModel, labels: _Labels, split: Split, data: _Frame) -> None:
    check = f"; ratings check: {labels.check}" if labels.check is not None else ""
    confirmed = all(t.vocab is not None for t in labels.tables)
    renames: list[tuple[str, str]] = []
    for t, c, r in zip(labels.tables, labels.columns, labels.rebuilt):
        v = r.vocab
        if t.vocab is not None:  # the file's own labels: the data must give the same ones
            if list(t.vocab.strings) != list(v.strings):
                diff = next(k for k, (a, b) in enumerate(zip(t.vocab.strings, v.strings)) if a != b) \
                    if len(t.vocab) == len(v) else None
                where = f" (row {diff}: {t.vocab.strings[diff]!r} in the file, {v.strings[diff]!r} rebuilt)" \
                    if diff is not None else ""
                raise UnreadableInputError(f"--data {data.name}: table {t.name}'s labels in the file differ from those "
                                           f"rebuilt from column {c}{where}: not the data or split it was trained on")
            continue
        t.vocab = Vocabulary(v.tokens, unknown_index=v.unknown_index, source=v.source + check, strings=v.strings)
        renames.append((t.name, c))
    if labels.check is not None and confirmed:
        model.warn("labels", f"--data {data.name} confirms the file's labels; ratings check: {labels.check}")
    model.drop_warnings("no-vocabulary", [t.name for t in labels.tables])
    for old, new in renames:
        if old != new and new not in model.tables:
            model.rename_table(old, new)
    for note in labels.notes:
        code = "labels-unchecked" if labels.unchecked and note is labels.notes[-1] else "labels"
        model.warn(code, f"--data {data.name}: {note}")
