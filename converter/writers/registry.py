"""The registry of output formats: what a format declares, how one is found, and how a save is
planned. Each format module (safetensors.py, onnx.py, word2vec.py, …) builds its
:class:`Format` and calls :func:`register` at import; ``writers/__init__.py`` imports them.

A format module offers one interface (the same names and signatures where the job is the same):

``sniff(head: bytes) -> bool``
    True when the first bytes of a file are this format's (never imports a heavy library).
``write(model, path, *, dtype="float32", progress=None, drop_unknown=False, **options)``
    Write ``model`` to ``path`` (and its extra files); return None, or a last step that the
    save runs after verifying the file and before committing it (safetensors patches in the
    source's sha256 there).
``read(path) -> EmbeddingModel``
    Read a file of this format back into the IR (how verification and ``inspect OUTPUT`` work).
``holds(model, options) -> EmbeddingModel``
    What a file written with these options holds of ``model`` (verification compares the
    read-back file with exactly this); ``options_of(path)`` gives those options as a file records them.
``extra_files(model, path, options) -> list[Path]``
    The files written beside ``path`` (ONNX external data, word2vec sidecars).
``check(path) -> None``
    An independent check of a written file (the onnx checker), where the format has one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import UnreadableInputError, UsageError
from ..ir import EmbeddingModel

#: ``progress(done, total)``: rows written so far over rows to write (all tables of one save).
Progress = Callable[[int, int], None]

#: A step a writer leaves for after verification (see :class:`Format`).
LastStep = Callable[[], None]


class Write(Protocol):
    def __call__(self, model: EmbeddingModel, path: Path, *, dtype: str = ..., progress: Progress | None = ...,
                 drop_unknown: bool = ..., **options: Any) -> LastStep | None: ...


def _same_model(model: EmbeddingModel, options: dict) -> EmbeddingModel:
    return model


def _no_options(path: Path) -> dict:
    return {}


def _no_extra_files(model: EmbeddingModel, path: Path, options: dict) -> list[Path]:
    return []


def _model_order(model: EmbeddingModel) -> list[str]:
    return list(model.tables)


@dataclass(frozen=True, kw_only=True)
class Format:
    """One output format: how to recognise, name, write, read back and check its files."""

    name: str
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    write: Write
    read: Callable[[Path], EmbeddingModel]
    # What a file of this format holds of a model written with these options (verification
    # compares the read-back file with exactly this), and those options as the file records them.
    holds: Callable[[EmbeddingModel, dict], EmbeddingModel] = _same_model
    options_of: Callable[[Path], dict] = _no_options
    one_table_per_file: bool = False
    extra_files: Callable[[EmbeddingModel, Path, dict], list[Path]] = _no_extra_files
    check: Callable[[Path], None] | None = None
    load_hint: str = ""  # how a user loads the file in its consumer; ``{path}`` is filled in
    # The order in which ``write`` writes the tables (its progress counts rows in that order).
    table_order: Callable[[EmbeddingModel], list[str]] = _model_order


#: Every registered format by name, in the order registered (the order sniffing asks them in).
FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add ``fmt`` to the registry (ValueError if its name or a suffix is taken)."""
    if fmt.name in FORMATS:
        raise ValueError(f"output format {fmt.name!r} is registered twice")
    for other in FORMATS.values():
        taken = set(fmt.suffixes) & set(other.suffixes)
        if taken:
            raise ValueError(f"suffix {sorted(taken)[0]!r} of {fmt.name!r} is {other.name!r}'s")
    FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> list[str]:
    """The registered formats' names, in registration order."""
    return list(FORMATS)


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
    raise UsageError(f"embconv writes no {suffix or 'extension-less'!r} files; name the output with the suffix "
                     f"of one of the formats it writes ({_formats_and_suffixes()})", path=str(path))


def _formats_and_suffixes() -> str:
    return "; ".join(f"{f.name}: {', '.join(f.suffixes)}" for f in FORMATS.values())


def check_suffix(path: str | os.PathLike, fmt: Format) -> None:
    """UsageError unless ``path`` ends with one of ``fmt``'s suffixes (case-insensitive): a file is
    never written under another format's name (``--to safetensors out.csv`` is refused), so the
    extension always tells what a file holds. The message lists every format and its suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix in fmt.suffixes:
        return
    raise UsageError(f"{fmt.name} files end with {' or '.join(fmt.suffixes)}, not "
                     f"{suffix or 'no extension'!r}; name the output accordingly (formats and their "
                     f"suffixes: {_formats_and_suffixes()})", path=str(path))


def sniff(path: str | os.PathLike) -> Format:
    """The format of an existing output file, by content (not by extension): the first
    registered format whose ``sniff`` accepts the file's first 4096 bytes."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise UnreadableInputError(f"cannot read: {e.strerror or e}", path=str(p)) from e
    for fmt in FORMATS.values():
        try:
            found = fmt.sniff(head)
        except (ValueError, OverflowError, IndexError, UnicodeDecodeError):  # bytes no writer of it makes
            found = False
        if found:
            return fmt
    raise UnreadableInputError(f"not an embconv output (none of {', '.join(FORMATS)})", path=str(p))


def read_output(path: str | os.PathLike) -> EmbeddingModel:
    """Read an embconv output (any format, sniffed by content) back into the IR."""
    p = Path(path)
    return sniff(p).read(p)


def _safe_name(name: str) -> str:
    """A table name usable inside a file name: letters, digits, ``_``, ``-``, ``.`` and ``=`` kept,
    everything else (``/``, spaces, ``%`` …) percent-encoded as UTF-8; never starting with ``.``."""
    def enc(m: re.Match) -> str:
        return "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogatepass"))

    out = re.sub(r"[^\w.=-]", enc, name)
    return ("%2E" + out[1:] if out.startswith(".") else out) or "%"


def plan(model: EmbeddingModel, path: str | os.PathLike, fmt: Format) -> list[tuple[EmbeddingModel, Path]]:
    """(model to write, primary file) pairs for one save: the model and ``path`` as given, or,
    for a format that holds one table per file and a model with several, each table in
    ``<stem>.<table><suffix>`` (e.g. ``out.vec`` → ``out.userId.vec`` and ``out.title.vec``)."""
    p = Path(os.path.abspath(path))
    if not model.tables:
        raise UsageError("the model has no table to write")
    if not fmt.one_table_per_file or len(model.tables) == 1:
        return [(model, p)]
    return [(model.select([name]), p.with_name(f"{p.stem}.{_safe_name(name)}{p.suffix}")) for name in model.tables]


__all__ = ["FORMATS", "Format", "LastStep", "Progress", "Write", "check_suffix", "format_for", "format_names", "plan",
           "read_output", "register", "sniff"]
