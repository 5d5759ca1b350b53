"""Output formats, registered in one place (in the manner of meshio).

``save(model, path)`` picks the format from the extension (or ``format=``), writes every file
into a private staging folder beside the destination, reads each back and compares it with
the model (``verify=True``), then moves the files into place (writers/atomic.py).

Formats: ``safetensors`` (.safetensors), ``onnx`` (.onnx, plus .onnx.data above ~2 GiB),
``word2vec-text`` (.vec, .txt) and ``word2vec-binary`` (.bin). word2vec holds one table per
file: a model with several tables is written as ``<stem>.<table><suffix>`` per table (e.g.
``out.vec`` → ``out.userId.vec`` and ``out.title.vec``), each with its sidecar
``<file>.manifest.json``; a one-table model is written to the path as given.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError, UnreadableInputError, UsageError, VerificationError
from ..ir import EmbeddingModel
from . import safetensors as _st
from . import word2vec as _w2v
from ._common import Progress
from .atomic import Staging


@dataclass(frozen=True)
class Format:
    """One output format: how to name, write, read back and check its files."""

    name: str
    suffixes: tuple[str, ...]
    one_table_per_file: bool
    # write(model, path, **options) -> None, or a last step that save() runs after verifying
    # the file and before flushing it to disk (safetensors patches in the source's sha256).
    write: Callable[..., Callable[[], None] | None]
    read: Callable[[Path], EmbeddingModel]
    extra_files: Callable[[EmbeddingModel, Path, dict], list[Path]]
    check: Callable[[Path], None] | None = None
    load_hint: str = ""  # how a user loads the file in its consumer; ``{path}`` is filled in
    # What a file of this format holds of a model written with these options (verification
    # compares the read-back file with exactly this), and those options as the file records them.
    holds: Callable[[EmbeddingModel, dict], EmbeddingModel] = lambda model, opts: model
    options_of: Callable[[Path], dict] = lambda path: {}


def _onnx() -> Any:
    """The ONNX writer module, imported on first use: the onnx library takes ~40 ms to import
    and most runs never touch it."""
    return importlib.import_module(".onnx", __name__)


def _none(model: EmbeddingModel, path: Path, opts: dict) -> list[Path]:
    return []


def _onnx_extra(model: EmbeddingModel, path: Path, opts: dict) -> list[Path]:
    ext = opts.get("external_data")
    if ext is None:
        ext = _onnx().needs_external(model, opts.get("dtype", "float32"))
    return [_onnx().data_path(path)] if ext else []


def _w2v_extra(model: EmbeddingModel, path: Path, opts: dict) -> list[Path]:
    return [_w2v.sidecar_path(path)]


FORMATS: dict[str, Format] = {
    "safetensors": Format("safetensors", (".safetensors",), False, _st.write, _st.read, _none,
                          load_hint="safetensors.numpy.load_file('{path}')  (vocabulary: README, 'safetensors')"),
    "onnx": Format("onnx", (".onnx",), False, lambda m, p, **kw: _onnx().write(m, p, **kw),
                   lambda p: _onnx().read(p), _onnx_extra, lambda p: _onnx().check(p),
                   load_hint="onnxruntime.InferenceSession('{path}')  (inputs <table>.index / <table>.id)"),
    "word2vec-text": Format("word2vec-text", (".vec", ".txt"), True,
                            lambda m, p, **kw: _w2v.write(m, p, binary=False, **kw),
                            lambda p: _w2v.read(p, binary=False), _w2v_extra,
                            load_hint="gensim.models.KeyedVectors.load_word2vec_format('{path}')",
                            holds=_w2v.holds, options_of=_w2v.options_of),
    "word2vec-binary": Format("word2vec-binary", (".bin",), True,
                              lambda m, p, **kw: _w2v.write(m, p, binary=True, **kw),
                              lambda p: _w2v.read(p, binary=True), _w2v_extra,
                              load_hint="gensim.models.KeyedVectors.load_word2vec_format('{path}', binary=True)",
                              holds=_w2v.holds, options_of=_w2v.options_of),
}


def format_for(path: str | os.PathLike, format: str | None = None) -> Format:
    """The Format named ``format``, else the one whose suffix ``path`` has (UsageError if none)."""
    if format is not None:
        if format not in FORMATS:
            raise UsageError(f"unknown output format {format!r}; choose one of {', '.join(FORMATS)}")
        return FORMATS[format]
    suffix = Path(path).suffix.lower()
    for f in FORMATS.values():
        if suffix in f.suffixes:
            return f
    raise UsageError(f"cannot tell the output format from {suffix or 'no extension'!r}; "
                     f"use --to with one of {', '.join(FORMATS)}", path=str(path))


def _safe_name(name: str) -> str:
    """A table name usable inside a file name: letters, digits, ``_``, ``-``, ``.`` and ``=`` kept,
    everything else (``/``, spaces, ``%`` …) percent-encoded as UTF-8; never starting with ``.``."""
    def enc(m: re.Match) -> str:
        return "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogatepass"))

    out = re.sub(r"[^\w.=-]", enc, name)
    return ("%2E" + out[1:] if out.startswith(".") else out) or "%"


def plan(model: EmbeddingModel, path: str | os.PathLike, fmt: Format) -> list[tuple[EmbeddingModel, Path]]:
    """(model to write, primary file) pairs for one save."""
    p = Path(os.path.abspath(path))
    if not model.tables:
        raise UsageError("the model has no table to write")
    if not fmt.one_table_per_file or len(model.tables) == 1:
        return [(model, p)]
    return [(model.select([name]), p.with_name(f"{p.stem}.{_safe_name(name)}{p.suffix}")) for name in model.tables]


def save(model: EmbeddingModel, path: str | os.PathLike, format: str | None = None, *, force: bool = False,
         dtype: str = "float32", drop_unknown: bool = False, progress: Progress | None = None,
         verify: bool = True, **options: Any) -> list[Path]:
    """Write ``model`` to ``path`` atomically; return every file written (model files first).

    ``dtype``: output float type (``float32``; ``float16``/``float64`` for safetensors and ONNX).
    ``drop_unknown``: word2vec only, leave out the unknown (``#na#``) row. ``progress(done, total)``
    is called with rows written. ``verify`` reads every file back and compares it with ``model``
    (VerificationError, exit 4) before anything is moved into place. ``options`` go to the
    writer (e.g. ``external_data=True`` for ONNX). Raises OutputError (exit 5) when a
    destination exists and ``force`` is False or the files cannot be written."""
    from ..verify import verify_models

    fmt = format_for(path, format)
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


def sniff(path: str | os.PathLike) -> Format:
    """The format of an existing output file, by content (not by extension)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise UnreadableInputError(f"cannot read: {e.strerror or e}", path=str(p)) from e
    if _st.sniff(head):
        return FORMATS["safetensors"]
    if _w2v.sniff_text(head):
        first, _, rest = head.partition(b"\n")
        dim = int(first.split()[1])
        sp = rest.find(b" ")
        body = rest[sp + 1 :] if sp >= 0 else b""
        line = body.split(b"\n", 1)[0]
        try:
            text = line.decode("utf-8")
            values = text.split(" ")
            if len(values) == dim and all(_is_float(v) for v in values):
                return FORMATS["word2vec-text"]
        except UnicodeDecodeError:
            pass
        return FORMATS["word2vec-binary"]
    if _looks_like_onnx(head):
        return FORMATS["onnx"]
    raise UnreadableInputError("not a safetensors, ONNX or word2vec file", path=str(p))


def _looks_like_onnx(head: bytes) -> bool:
    """A ModelProto starts with ir_version (field 1, varint), as onnx and every exporter write
    it. (Here rather than in onnx.py, so sniffing never imports the onnx library.)"""
    return len(head) >= 2 and head[0] == 0x08 and 3 <= head[1] <= 20


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_output(path: str | os.PathLike) -> EmbeddingModel:
    """Read an embconv output (any format, sniffed by content) back into the IR."""
    p = Path(path)
    return sniff(p).read(p)


def verify_output(path: str | os.PathLike, expected: EmbeddingModel, *, dtype: str | None = None) -> None:
    """Prove that the output file ``path`` holds exactly what it should of ``expected`` (its
    source): the tables it holds, as its format holds them with the options the file records;
    ``dtype`` defaults to the one the file holds. VerificationError (exit 4) otherwise."""
    from ..verify import verify_models

    p = Path(path)
    fmt = sniff(p)
    actual = fmt.read(p)
    if fmt.one_table_per_file:
        missing = [n for n in actual.tables if n not in expected.tables]
        if missing:
            raise VerificationError(f"holds table {missing[0]!r}, which the source does not have", path=str(p))
        expected = expected.select(list(actual.tables))
    if dtype is None:
        dtype = str(next(iter(actual.tables.values())).weight_dtype)
    verify_models(fmt.holds(expected, fmt.options_of(p)), actual, dtype=dtype)


__all__ = ["FORMATS", "Format", "Progress", "format_for", "plan", "read_output", "save", "sniff", "verify_output"]
