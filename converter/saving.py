"""Saving a model: the pipeline around a format's writer.

``save(model, path)`` picks the format from the extension (or ``format=``), plans the files
(one per table for word2vec), writes every file into a private staging folder beside the
destination (atomic.py), reads each back and compares it with the model (``verify``,
converter/verify.py), runs the writer's last step (safetensors patches in the source's sha256)
and then moves the files into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .atomic import Staging
from .errors import OutputError, UsageError
from .ir import EmbeddingModel
from .verify import verify_models
from .writers import Progress, format_for, plan
from .writers.registry import check_suffix


def save(model: EmbeddingModel, path: str | os.PathLike, format: str | None = None, *, force: bool = False,
         dtype: str = "float32", drop_unknown: bool = False, progress: Progress | None = None,
         verify: bool = True, allow_unlabelled: bool = False, **options: Any) -> list[Path]:
    """Write ``model`` to ``path`` atomically; return every file written (model files first).

    A table without a vocabulary would be written with numbered rows, which look like ids: that
    needs ``allow_unlabelled=True`` (otherwise UsageError, exit 2, naming the ways to label it).

    ``dtype``: output float type (``float32``; ``float16``/``float64`` for safetensors and ONNX).
    ``drop_unknown``: word2vec only, leave out the unknown (``#na#``) row. ``progress(done, total)``
    is called with rows written. ``verify`` reads every file back and compares it with ``model``
    (VerificationError, exit 4) before anything is moved into place. ``options`` go to the
    writer (e.g. ``external_data=True`` for ONNX). ``path`` must end with one of the format's
    suffixes, also when ``format`` is given (UsageError, exit 2). Raises OutputError (exit 5) when a
    destination exists and ``force`` is False or the files cannot be written."""
    fmt = format_for(path, format)
    check_suffix(path, fmt)  # DST must end with one of the chosen format's suffixes
    if not allow_unlabelled:
        refuse_unlabelled(model)
    if drop_unknown and not fmt.one_table_per_file:
        raise UsageError("drop_unknown applies to word2vec outputs only")
    opts = dict(options, dtype=dtype)
    jobs = plan(model, path, fmt)
    files: list[Path] = []
    for sub, primary in jobs:
        files.append(primary)
        files.extend(fmt.extra_files(sub, primary, opts))
    total = sum(t.rows for t in model.tables.values())
    done_before = 0

    def sub_progress(done: int, _total: int) -> None:
        if progress is not None:
            progress(done_before + done, total)

    with Staging(files, force) as staging:
        try:
            for sub, primary in jobs:
                staged = staging.path(primary)
                last_step = fmt.write(sub, staged, progress=sub_progress, drop_unknown=drop_unknown, **opts)
                done_before += sum(t.rows for t in sub.tables.values())
                for extra in fmt.extra_files(sub, primary, opts):
                    if not staging.path(extra).exists():
                        raise OutputError(f"the writer did not produce {extra.name}", path=str(primary))
                staging.sync_in_background()  # the disk flushes while the CPU verifies
                if verify:
                    if fmt.check is not None:
                        fmt.check(staged)
                    verify_models(fmt.holds(sub, {"drop_unknown": drop_unknown}), fmt.read(staged), dtype=dtype)
                if last_step is not None:
                    last_step()
                    staging.sync_in_background()  # again, for what the last step changed
        except OSError as e:
            raise OutputError(f"cannot write: {e.strerror or e}", path=str(path)) from e
        return staging.commit()


def refuse_unlabelled(model: EmbeddingModel) -> None:
    """UsageError when a table has no vocabulary (its rows would only be numbered)."""
    bare = [t for t in model.tables.values() if t.vocab is None]
    if not bare:
        return
    names = ", ".join(t.name for t in bare)
    collab_or_tabular = any(t.role != "token" for t in bare)
    data = "rebuild them with --data FILE --split … (the training data), " if collab_or_tabular else ""
    raise UsageError(f"table(s) {names} have no labels: their rows would be numbered 0… and look like ids; {data}"
                     f"supply them with --vocab {bare[0].name}=SPEC or --vocab EXPORT.pkl, or pass --allow-unlabelled "
                     "to write numbered rows")


__all__ = ["Progress", "refuse_unlabelled", "save"]
