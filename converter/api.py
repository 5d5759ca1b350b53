"""The library's front door: open anything embconv reads, convert, save, verify, inspect and scan
(design.md §5). The command line talks to the library through this module alone.

This is the one place that knows both sides: loaders for fastai files, writers' readers for
embconv outputs. Loaders and writers never import each other."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import refuse_inputs
from .errors import OutputError, UnreadableInputError, UsageError
from .hashing import hash_in_background
from .ir import EmbeddingModel, ModelWarning
from .loaders import TrainingData, generations
from .loaders import load as load_fastai
from .pickle import ScanReport, describe, open_model_file, scan_file
from .saving import Progress, refuse_unlabelled, save
from .verify import verify_output
from .writers import FORMATS, format_for, plan, read_output
from .writers import sniff as sniff_output


def load(path: str | os.PathLike, vocab: Any = None, *, data: Any = None, split: str | None = None,
         user: str | None = None, item: str | None = None, rating: str | None = None,
         cat: Iterable[str] | str | None = None, cont: Iterable[str] | str | None = None) -> EmbeddingModel:
    """Read a fastai file of any generation — or an embconv output — into an ``EmbeddingModel``.

    ``vocab`` supplies vocabularies a fastai file lacks, e.g. ``{"user": "ratings.csv:userId"}``
    (a pickled list, a text file, a JSON list, ``file.csv:column`` or the learner's
    ``export.pkl``), or ``"export.pkl"`` for every table. ``data`` (a CSV/Parquet path or a pandas
    DataFrame: what was given to fastai) rebuilds the labels of a ``learn.save`` file as fastai
    built them, with ``split`` saying how fastai split it (``"seed=42"``, ``"seed=7,valid_pct=0.1"``,
    ``"valid_idx=0:500"``, ``"none"``; without it only labels every value of the data has a row in
    are accepted) and the columns: collab ``user``/``item``/``rating`` (default: the first three),
    tabular ``cat``/``cont`` (cat_names / cont_names as given to fastai). Weights stay
    memory-mapped until used."""
    training = training_data(data, split, user=user, item=item, rating=rating, cat=cat, cont=cont)
    if is_output(path):
        if vocab or training is not None:
            raise UsageError("embconv outputs carry their own vocabularies; --vocab and --data apply to fastai files")
        return read_output(path)
    return load_fastai(path, vocab=vocab, data=training)


def training_data(data: Any, split: str | None = None, **roles: Any) -> TrainingData | None:
    """The ``TrainingData`` of ``load``'s data options (None without ``data``)."""
    if data is None:
        if split is not None or any(v is not None for v in roles.values()):
            raise UsageError("--split, --user, --item, --rating, --cat and --cont go with --data FILE")
        return None
    if isinstance(data, TrainingData):
        return data

    def names(value: Any) -> list[str] | None:
        if value is None:
            return None
        items = value.split(",") if isinstance(value, str) else list(value)
        return [str(v).strip() for v in items if str(v).strip()]
    return TrainingData(data, split, user=roles.get("user"), item=roles.get("item"), rating=roles.get("rating"),
                        cat=names(roles.get("cat")), cont=names(roles.get("cont")))


def set_y_range(model: EmbeddingModel, y_range: tuple[float, float] | None) -> None:
    """Give a model the rating range its file lacks (UsageError if the file has another one)."""
    if y_range is None:
        return
    lo, hi = (float(v) for v in y_range)
    if not lo < hi:
        raise UsageError(f"--y-range wants LO < HI, got {lo},{hi}")
    if model.model.y_range is not None and tuple(model.model.y_range) != (lo, hi):
        raise UsageError(f"the file already says y_range={list(model.model.y_range)}")
    model.model.y_range = (lo, hi)
    model.drop_warnings("no-y-range")


def is_output(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file embconv wrote (any format, told by content)."""
    try:
        sniff_output(path)
    except UnreadableInputError:
        return False
    return True


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, to: str | None = None,
            tables: Iterable[str] | None = None, vocab: Any = None, data: Any = None, split: str | None = None,
            roles: dict[str, Any] | None = None, allow_unlabelled: bool = False, force: bool = False,
            verify: bool = True, dtype: str = "float32", drop_unknown: bool = False, progress: Progress | None = None,
            y_range: tuple[float, float] | None = None, on_warning: Callable[[ModelWarning], None] | None = None,
            **options: Any) -> list[Path]:
    """Convert ``src`` into ``dst`` (format from its extension or ``to``); returns the files
    written. Every file is read back and compared with the source before it is moved into
    place, unless ``verify`` is False. ``vocab``, ``data``, ``split`` and ``roles`` (``user``,
    ``item``, ``rating``, ``cat``, ``cont``) label the tables as in ``load``; a table left without
    labels needs ``allow_unlabelled`` (UsageError otherwise). ``on_warning`` is called with each of
    the model's warnings before anything is written. ``y_range`` supplies the rating range a file
    lacks (collab ``learn.save`` files and files of generations that never stored it).
    ``options`` go to the writer (e.g. ``external_data=True`` for ONNX)."""
    refuse_inputs([dst], _input_files(src, vocab, data))  # DST == SRC: exit 5 before anything else
    pending = hash_in_background(src)  # the outputs' manifest names the source's hash: overlap it with loading
    model = load(src, vocab=vocab, data=data, split=split, **(roles or {}))
    model.source.expect_sha256(pending)
    set_y_range(model, y_range)
    if tables:
        wanted = list(tables)
        try:
            model = model.select(wanted)
        except KeyError as e:
            raise UsageError(f"no table {e.args[0]!r} in {src} (tables: {', '.join(model.tables)})") from None
    if not allow_unlabelled:
        refuse_unlabelled(model)  # before the warnings: the error already says what they would
    if on_warning is not None:
        for w in model.warnings:
            on_warning(w)
    return save(model, dst, to, force=force, dtype=dtype, drop_unknown=drop_unknown, progress=progress,
                verify=verify, allow_unlabelled=allow_unlabelled, inputs=_input_files(src, vocab, data), **options)


def _input_files(src: Any, vocab: Any, data: Any) -> list[str | os.PathLike]:
    """Every file a conversion reads (the source, ``data``, vocabulary files): none of them may
    be an output (OutputError, exit 5, before anything is written; checked by (device, inode))."""
    found: list[str | os.PathLike] = [src]
    if isinstance(data, (str, os.PathLike)):
        found.append(data)
    specs = list(vocab.values()) if isinstance(vocab, dict) else list(vocab) if isinstance(vocab, (list, tuple)) \
        else [vocab]
    for spec in specs:
        if isinstance(spec, os.PathLike):
            found.append(spec)
        elif isinstance(spec, str):
            text = spec.split("=", 1)[1] if "=" in spec and not os.path.exists(spec) else spec
            found.append(text)
            if ":" in text:
                found.append(text.rsplit(":", 1)[0])
    return found


@dataclass(frozen=True)
class Verified:
    """What ``verify`` proved: these ``files`` hold exactly the ``tables`` (``rows`` in all) of the source."""

    files: list[Path]
    tables: int
    rows: int


def verify(dst: str | os.PathLike, against: str | os.PathLike, *, vocab: Any = None, data: Any = None,
           split: str | None = None, roles: dict[str, Any] | None = None,
           y_range: tuple[float, float] | None = None) -> Verified:
    """Prove that the output ``dst`` matches the file it was converted from (``vocab``, the data
    options and ``y_range`` as given to ``convert``). ``dst`` is a file, or the path given to
    ``convert`` for a format that writes one file per table. VerificationError (exit 4) when it
    does not."""
    expected = load(against, vocab=vocab, data=data, split=split, **(roles or {}))
    set_y_range(expected, y_range)
    path = Path(dst)
    if path.exists():
        verify_output(path, expected)
        checked = [path]
    else:
        jobs = plan(expected, path, format_for(path))
        missing = [str(p) for _, p in jobs if not p.exists()]
        if missing:
            looked = "" if missing == [str(path)] else f" (looked for {', '.join(missing)})"
            raise UsageError(f"no such output{looked}", path=str(dst))
        for sub, primary in jobs:
            verify_output(primary, sub)
        checked = [p for _, p in jobs]
    return Verified(checked, len(expected.tables), sum(t.rows for t in expected.tables.values()))


def scan(path: str | os.PathLike) -> ScanReport:
    """Every global the file's pickles name, each with a verdict, and the file's verdict —
    without loading anything (refused names are listed, never resolved)."""
    return scan_file(path)


def inspect_tensors(path: str | os.PathLike) -> dict:
    """Every tensor in a torch/fastai file (path in the object graph, shape, dtype), with the
    container, a description of the top-level object and the container's warnings."""
    with open_model_file(path) as mf:
        return {
            "path": mf.path,
            "size": mf.size,
            "container": mf.container,
            "top_level": describe(mf.root),
            "tensors": [{"path": p, "shape": list(t.shape), "dtype": t.dtype.name} for p, t in mf.tensors()],
            "warnings": list(mf.warnings),
        }


def similar(src: str | os.PathLike, token: Any, *, table: str | None = None, k: int = 10,
            vocab: Any = None, data: Any = None, split: str | None = None,
            roles: dict[str, Any] | None = None) -> tuple[str, list[tuple[Any, float]]]:
    """The ``k`` rows most like ``token`` by cosine similarity: (the table searched, [(token,
    similarity), …] best first; the unknown row and the token itself left out). Without
    ``table`` the model's only table is searched, or the one table whose vocabulary has ``token``."""
    model = load(src, vocab=vocab, data=data, split=split, **(roles or {}))
    if table is not None:
        if table not in model.tables:
            raise UsageError(f"no table {table!r} in {src} (tables: {', '.join(model.tables)})")
        chosen = model.tables[table]
    else:
        having = [t for t in model.tables.values() if t.vocab is not None and t.vocab.index(token) is not None]
        if len(model.tables) == 1:
            chosen = next(iter(model.tables.values()))
        elif len(having) == 1:
            chosen = having[0]
        elif not having:
            raise UsageError(f"{token!r} is in no table's vocabulary (tables: {', '.join(model.tables)})")
        else:
            raise UsageError(f"{token!r} is in several tables ({', '.join(t.name for t in having)}): pick one "
                             "with --table")
    if chosen.vocab is None:
        raise UsageError(f"table {chosen.name!r} has no vocabulary: supply one with --vocab {chosen.name}=SPEC")
    if not k > 0:
        raise UsageError(f"-k wants a positive number, got {k}")
    try:
        return chosen.name, chosen.most_similar(token, k=k)
    except KeyError:
        raise UsageError(f"{token!r} is not in table {chosen.name!r}") from None


def encode(model: EmbeddingModel | str | os.PathLike, df: Any, columns: Any = None) -> Any:
    """``df`` (a pandas DataFrame) with each categorical column that has a table replaced by its
    vectors (``<col>_0 … <col>_{d-1}``), every value mapped as the fastai generation that trained
    the model maps it at inference (unseen and NaN → the ``#na#`` row; FillMissing's ``_na``
    columns rebuilt). ``model`` is an EmbeddingModel or a path to load; ``columns`` restricts or
    maps tables to columns (``{"cat_0": "city"}``). Needs the data extra."""
    from .encoding import encode as encode_frame

    return encode_frame(model if isinstance(model, EmbeddingModel) else load(model), df, columns)


def encode_file(src: EmbeddingModel | str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                columns: Any = None, vocab: Any = None, training: Any = None, split: str | None = None,
                roles: dict[str, Any] | None = None, force: bool = False, batch_rows: int | None = None) -> Any:
    """Stream the dataset ``data`` (CSV or Parquet) into ``out`` (CSV or Parquet) with its
    categorical columns replaced by their vectors, as ``encode`` does, in bounded memory; returns
    the report (rows, and per column the unseen and missing values). An existing ``out`` needs
    ``force``; ``out`` may never be ``data`` itself."""
    from .encoding import DEFAULT_BATCH_ROWS
    from .encoding import encode_file as encode_stream

    out_path = Path(out)
    if out_path.exists():
        if Path(data).exists() and os.path.samefile(data, out_path):
            raise OutputError("is the dataset being encoded: choose another OUT", path=str(out))
        if not force:
            raise OutputError("exists: use --force to replace it", path=str(out))
    model = src if isinstance(src, EmbeddingModel) else load(src, vocab=vocab, data=training, split=split,
                                                              **(roles or {}))
    return encode_stream(model, data, out_path, columns=columns, batch_rows=batch_rows or DEFAULT_BATCH_ROWS)


def output_formats() -> list[str]:
    """The names of the output formats embconv writes (``--to``)."""
    return sorted(FORMATS)


def load_hint(dst: str | os.PathLike, to: str | None = None) -> str:
    """How a user loads a file of ``dst``'s format in its consumer (``{path}`` to fill in)."""
    return format_for(dst, to).load_hint


def generation_label(name: str) -> str:
    """How a person calls the fastai generation that the manifest names ``name``."""
    return generations.get(name).label


__all__ = ["TrainingData", "Verified", "convert", "encode", "encode_file", "generation_label", "inspect_tensors", "is_output", "load", "load_hint",
           "output_formats", "read_output", "save", "scan", "set_y_range", "similar", "training_data", "verify"]
