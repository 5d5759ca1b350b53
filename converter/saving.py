"""Saving a model: the pipeline around a format's writer.

``save(model, path)`` picks the format from the extension (or ``format=``), plans the files
(one per table for word2vec), writes every file into a private staging folder beside the
destination (atomic.py), reads each back and compares it with the model (``verify``,
converter/verify.py), runs the writer's last step (safetensors patches in the source's sha256)
and then moves the files into place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from .atomic import Staging
from .errors import EmbconvError, OutputError, UsageError
from .ir import EmbeddingModel
from .verify import verify_models
from .writers import Progress, format_for, plan
from .writers.registry import check_suffix


class PhasedProgress(Protocol):
    """A progress sink that also wants to know what is being done: ``phase(label, total)`` starts
    a phase (``writing TABLE``, ``reading back FILE``, ``verifying TABLE``, ``finishing FILE``,
    ``flushing to disk``; ``total`` rows, or None when it cannot be counted), then
    ``sink(done, total)`` reports rows within that phase. ``tick()`` (optional) is called about
    every 0.2 s of a phase that cannot be counted, so a display can keep moving."""

    def __call__(self, done: int, total: int) -> None: ...

    def phase(self, label: str, total: int | None) -> None: ...


def save(model: EmbeddingModel, path: str | os.PathLike, format: str | None = None, *, force: bool = False,
         dtype: str = "float32", drop_unknown: bool = False, progress: Progress | PhasedProgress | None = None,
         verify: bool = True, allow_unlabelled: bool = False, inputs: Iterable[str | os.PathLike] = (),
         **options: Any) -> list[Path]:
    """Write ``model`` to ``path`` atomically; return every file written (model files first).

    A table without a vocabulary would be written with numbered rows, which look like ids: that
    needs ``allow_unlabelled=True`` (otherwise UsageError, exit 2, naming the ways to label it).

    ``dtype``: output float type (``float32``; ``float16``/``float64`` for safetensors and ONNX).
    ``drop_unknown``: word2vec only, leave out the unknown (``#na#``) row. ``progress(done, total)``
    is called with rows written (all tables together); a ``progress`` with a ``phase`` method
    (:class:`PhasedProgress`) is told each phase instead, per table. ``verify`` reads every file
    back and compares it with ``model`` (VerificationError, exit 4) before anything is moved into
    place. ``options`` go to the writer (e.g. ``external_data=True`` for ONNX). ``path`` must end
    with one of the format's suffixes, also when ``format`` is given (UsageError, exit 2). Raises
    OutputError (exit 5) when a destination exists and ``force`` is False, is the model's source
    file or one of ``inputs`` (whatever its name: hard link, symlink), has a name longer than the
    file system allows, or the files cannot be written."""
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
    protected = list(inputs)
    if model.source is not None and model.source.path:
        protected.append(model.source.path)
    total = sum(t.rows for t in model.tables.values())
    done_before = 0
    phase: Callable[[str, int | None], None] | None = getattr(progress, "phase", None)
    tick: Callable[[], None] | None = getattr(progress, "tick", None)
    current: list[str | None] = [None]

    def start(label: str, rows: int | None) -> None:
        if phase is not None and current[0] != label:
            current[0] = label
            phase(label, rows)

    with Staging(files, force, protected) as staging:
        try:
            for sub, primary in jobs:
                staged = staging.path(primary)
                names = fmt.table_order(sub)
                rows = [sub.tables[n].rows for n in names]
                bounds = [sum(rows[: i + 1]) for i in range(len(rows))]

                def sub_progress(done: int, _total: int, names: list[str] = names, rows: list[int] = rows,
                                 bounds: list[int] = bounds, before: int = done_before) -> None:
                    if progress is None:
                        return
                    if phase is None:
                        progress(before + done, total)
                        return
                    i = next((k for k, b in enumerate(bounds) if done <= b), len(bounds) - 1)
                    start(f"writing {names[i]}", rows[i])
                    progress(done - (bounds[i - 1] if i else 0), rows[i])

                start(f"writing {names[0]}", rows[0])
                last_step = fmt.write(sub, staged, progress=sub_progress, drop_unknown=drop_unknown, **opts)
                done_before += sum(rows)
                for extra in fmt.extra_files(sub, primary, opts):
                    if not staging.path(extra).exists():
                        raise OutputError(f"the writer did not produce {extra.name}", path=str(primary))
                staging.sync_in_background()  # the disk flushes while the CPU verifies
                if verify:
                    if fmt.check is not None:
                        start(f"checking {primary.name}", None)
                        fmt.check(staged)
                    start(f"reading back {primary.name}", None)
                    actual = fmt.read(staged)

                    def table_progress(table: str, done: int, rows: int) -> None:
                        start(f"verifying {table}", rows)
                        if progress is not None and phase is not None:
                            progress(done, rows)

                    verify_models(fmt.holds(sub, {"drop_unknown": drop_unknown}), actual, dtype=dtype,
                                  progress=table_progress)
                if last_step is not None:
                    start(f"finishing {primary.name}", None)
                    last_step()
                    staging.sync_in_background()  # again, for what the last step changed
            if staging.syncing():
                start("flushing to disk", None)
            model.source.check_unchanged()  # last word, with or without --no-verify: one version of the source
            return staging.commit(tick=tick)
        except EmbconvError as e:
            _name_destinations(e, staging)
            raise
        except OSError as e:
            raise OutputError(f"cannot write: {e.strerror or e}", path=str(path)) from e


def _name_destinations(e: EmbconvError, staging: Staging) -> EmbconvError:
    """``e`` naming the destinations instead of the staged files (which are deleted by then)."""
    pairs = sorted(((str(staging.path(d)), str(d)) for d in staging.destinations), key=lambda p: -len(p[0]))
    message = e.message
    for staged, dest in pairs:
        message = message.replace(staged, dest)
    where = e.path
    if where is not None:
        dest_of = staging.destination_of(where)
        if dest_of is not None:
            where = str(dest_of)
        elif where.startswith(str(staging.dir)):
            where = str(staging.destinations[0])
    if (message, where) != (e.message, e.path):
        e.message, e.path = message, where
        e.args = (f"{where}: {message}" if where else message,)
    return e


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


__all__ = ["PhasedProgress", "Progress", "refuse_unlabelled", "save"]
