"""The library's front door: open anything embconv reads, convert, save (design.md §5).

This is the one place that knows both sides: loaders for fastai files, writers' readers for
embconv outputs. Loaders and writers never import each other."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UnreadableInputError, UsageError
from .hashing import hash_in_background
from .ir import EmbeddingModel
from .loaders import load as load_fastai
from .writers import Progress, read_output, save
from .writers import sniff as sniff_output


def load(path: str | os.PathLike, vocab: Any = None) -> EmbeddingModel:
    """Read a fastai file of any generation — or an embconv output — into an ``EmbeddingModel``.

    ``vocab`` supplies vocabularies a fastai file lacks, e.g. ``{"user": "ratings.csv:userId"}``
    (a pickled list, a text file, a JSON list, ``file.csv:column`` or the learner's
    ``export.pkl``). Weights stay memory-mapped until used."""
    if _is_output(path):
        if vocab:
            raise UsageError("embconv outputs carry their own vocabularies; --vocab applies to fastai files")
        return read_output(path)
    return load_fastai(path, vocab=vocab)


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
    model.warnings[:] = [w for w in model.warnings if not w.startswith("no y_range in this file")]


def _is_output(path: str | os.PathLike) -> bool:
    try:
        sniff_output(path)
    except UnreadableInputError:
        return False
    return True


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, to: str | None = None,
            tables: Iterable[str] | None = None, vocab: Any = None, force: bool = False, verify: bool = True,
            dtype: str = "float32", drop_unknown: bool = False, progress: Progress | None = None,
            y_range: tuple[float, float] | None = None, **options: Any) -> list[Path]:
    """Convert ``src`` into ``dst`` (format from its extension or ``to``); returns the files
    written. Every file is read back and compared with the source before it is moved into
    place, unless ``verify`` is False. ``y_range`` supplies the rating range a file lacks
    (fastai 0.7 collab, v1/v2 ``learn.save``). ``options`` go to the writer (e.g.
    ``external_data=True`` for ONNX)."""
    pending = hash_in_background(src)  # the outputs' manifest names the source's hash: overlap it with loading
    model = load(src, vocab=vocab)
    model.source.expect_sha256(pending)
    set_y_range(model, y_range)
    if tables:
        wanted = list(tables)
        try:
            model = model.select(wanted)
        except KeyError as e:
            raise UsageError(f"no table {e.args[0]!r} in {src} (tables: {', '.join(load(src, vocab).tables)})") from None
    return save(model, dst, to, force=force, dtype=dtype, drop_unknown=drop_unknown, progress=progress,
                verify=verify, **options)


__all__ = ["convert", "load", "read_output", "save", "set_y_range"]
