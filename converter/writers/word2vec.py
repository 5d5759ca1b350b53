"""word2vec text (``.vec``/``.txt``) and binary (``.bin``) writers and readers.

One file per table (word2vec holds one matrix). Text: a header line ``rows dim``, then per
row ``key v1 … vd`` separated by single spaces, each value the shortest decimal that reads
back to the same float32 (see _floatfmt.py). Binary (gensim's layout): the same header line,
then per row the key's UTF-8 bytes, one 0x20 byte and ``dim`` little-endian float32 values, no
newline. gensim 4.4 ``KeyedVectors.load_word2vec_format`` loads both with exact values, one
unique key per row and no warnings.

Keys are the vocabulary's tokens with the treatment of tokens.py (percent-encoding of ``%``,
whitespace, control characters and invalid Unicode; ``%`` for the empty token; ``#k``
disambiguators for duplicates). A table without a vocabulary is written with its row numbers
as keys. ``drop_unknown=True`` leaves out the unknown (``#na#``) row. Biases are not written
(word2vec has no place for them). Only float32 is written.

Sidecar: word2vec has no metadata, so each file ``F`` gets ``F.manifest.json``::

    {"embconv.manifest": <the manifest of this one table, tokens omitted>,
     "embconv.word2vec": {"layout": 1, "format": "word2vec-text" | "word2vec-binary",
                          "table": "<name>", "escaping": "percent-1",
                          "row_labels": false,        # true: keys are row numbers (no vocabulary)
                          "dropped_rows": [0],        # source rows left out (drop_unknown)
                          "renamed_rows": [5, 6]}}    # source rows whose key got a #k suffix

``read`` uses the sidecar to give back the original tokens; without one it returns the keys
as they are (a word2vec file embconv did not write).
"""

from __future__ import annotations

import json
import mmap
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError, UnreadableInputError, UsageError
from ..ir import EmbeddingModel, EmbeddingTable, InMemory, SourceInfo, Vocabulary, model_from_manifest
from . import tokens as tok
from ._common import ProgressCounter, output_dtype, output_source, weight_chunks
from ._floatfmt import iter_lines

TEXT = "word2vec-text"
BINARY = "word2vec-binary"
SIDECAR_SUFFIX = ".manifest.json"


def sidecar_path(path: Path) -> Path:
    """Where the sidecar manifest of a word2vec file lives."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _single(model: EmbeddingModel) -> EmbeddingTable:
    if len(model.tables) != 1:
        raise UsageError("a word2vec file holds exactly one table")
    return next(iter(model.tables.values()))


def _rows_and_keys(t: EmbeddingTable, drop_unknown: bool) -> tuple[list[int], list[str], list[int], list[int]]:
    """(source rows written, key per written row, dropped rows, renamed source rows)."""
    if t.vocab is not None:
        if len(t.vocab) != t.rows:
            raise OutputError(f"table {t.name!r}: vocabulary has {len(t.vocab)} tokens, weight {t.rows} rows")
        strings = list(t.vocab.strings)
        unk = t.vocab.unknown_index
    else:
        strings = [str(i) for i in range(t.rows)]
        unk = None
    dropped = [unk] if (drop_unknown and unk is not None) else []
    rows = [i for i in range(t.rows) if i not in dropped] if dropped else list(range(t.rows))
    kept = [strings[i] for i in rows] if dropped else strings
    keys, renamed_pos = tok.unique_keys(kept)
    return rows, keys, dropped, [rows[i] for i in renamed_pos]


def write(model: EmbeddingModel, path: Path, *, binary: bool, dtype: str = "float32", drop_unknown: bool = False,
          progress: Any = None, **_: Any) -> None:
    """Write the single table of ``model`` to ``path`` and its sidecar ``path.manifest.json``."""
    if dtype != "float32":
        raise UsageError(f"word2vec files hold float32 only (asked for {dtype})")
    t = _single(model)
    if t.dim < 1:
        raise OutputError(f"table {t.name!r} has dimension 0; word2vec cannot hold it", path=str(path))
    out = output_dtype("float32")
    rows, keys, dropped, renamed = _rows_and_keys(t, drop_unknown)
    key_bytes = [k.encode("utf-8") for k in keys]
    counter = ProgressCounter(t.rows, progress)
    drop_set = set(dropped)
    with open(path, "wb") as f:
        f.write(f"{len(rows)} {t.dim}\n".encode())
        written = 0
        for start, chunk in weight_chunks(t, out, budget=4 << 20):
            if drop_set:
                keep = [i - start for i in range(start, start + len(chunk)) if i not in drop_set]
                chunk = chunk[keep]
            ks = key_bytes[written : written + len(chunk)]
            if binary:
                f.write(b"".join(k + b" " + r.tobytes() for k, r in zip(ks, chunk, strict=True)))
            else:
                for block in iter_lines(ks, chunk):
                    f.write(block)
            written += len(chunk)
            counter.add(len(chunk) + (len(drop_set) if start == 0 else 0))
        if written != len(rows):
            raise OutputError(f"table {t.name!r}: wrote {written} rows, expected {len(rows)}", path=str(path))
        f.flush()
        os.fsync(f.fileno())
    side = {
        "embconv.manifest": model.manifest(include_tokens=False),
        "embconv.word2vec": {"layout": 1, "format": BINARY if binary else TEXT, "table": t.name,
                             "escaping": "percent-1", "row_labels": t.vocab is None,
                             "dropped_rows": dropped, "renamed_rows": renamed},
    }
    sidecar_path(path).write_text(json.dumps(side, ensure_ascii=False, indent=1), encoding="utf-8")


def sniff_text(head: bytes) -> bool:
    line = head.split(b"\n", 1)[0]
    parts = line.split()
    return len(parts) == 2 and all(p.isdigit() for p in parts) and b"\n" in head


def read_sidecar(path: Path) -> dict | None:
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnreadableInputError(f"sidecar {side.name} is unreadable: {e}", path=str(path)) from e


def _read_text(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, "rb") as f:
        header = f.readline().split()
        if len(header) != 2:
            raise UnreadableInputError("word2vec header must be 'rows dim'", path=str(path))
        n, dim = int(header[0]), int(header[1])
        keys: list[str] = []
        w = np.empty((n, dim), dtype=np.float32)
        for i in range(n):
            line = f.readline()
            if not line:
                raise UnreadableInputError(f"file ends after {i} of {n} rows", path=str(path))
            parts = line.rstrip().split(b" ")
            if len(parts) != dim + 1:
                raise UnreadableInputError(f"row {i} has {len(parts) - 1} values, expected {dim}", path=str(path))
            keys.append(parts[0].decode("utf-8"))
            w[i] = np.array(parts[1:], dtype=np.float32)
    return keys, w


def _read_binary(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        end = mm.find(b"\n")
        header = mm[:end].split()
        if end < 0 or len(header) != 2:
            raise UnreadableInputError("word2vec header must be 'rows dim'", path=str(path))
        n, dim = int(header[0]), int(header[1])
        pos = end + 1
        keys: list[str] = []
        w = np.empty((n, dim), dtype=np.float32)
        for i in range(n):
            sp = mm.find(b" ", pos)
            if sp < 0 or sp + 1 + 4 * dim > len(mm):
                raise UnreadableInputError(f"file ends after {i} of {n} rows", path=str(path))
            keys.append(mm[pos:sp].decode("utf-8").lstrip("\n"))
            w[i] = np.frombuffer(mm, dtype="<f4", count=dim, offset=sp + 1)
            pos = sp + 1 + 4 * dim
    return keys, w


def read(path: Path, binary: bool) -> EmbeddingModel:
    """Read a word2vec file (and its sidecar, where there is one) into a one-table model."""
    try:
        keys, w = _read_binary(path) if binary else _read_text(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnreadableInputError(f"not a readable word2vec file: {e}", path=str(path)) from e
    side = read_sidecar(path)
    container = BINARY if binary else TEXT
    if side is None:
        name = path.stem
        table = EmbeddingTable(name=name, role="token", weight_source=InMemory(w), vocab=Vocabulary(keys),
                               weight_key=name)
        return EmbeddingModel(OrderedDict([(name, table)]),
                              SourceInfo(path=str(path), size=path.stat().st_size, artifact="embconv-output",
                                         container=container))
    info = side["embconv.word2vec"]
    manifest = side["embconv.manifest"]
    name = info["table"]
    tmeta = next((t for t in manifest["tables"] if t["name"] == name), None)
    if tmeta is None:
        raise UnreadableInputError(f"sidecar names table {name!r} but its manifest lacks it", path=str(path))
    dropped = set(info.get("dropped_rows", []))
    renamed = set(info.get("renamed_rows", []))
    src_rows = [i for i in range(len(keys) + len(dropped)) if i not in dropped]
    tokens = [tok.original_of(k, r in renamed) for k, r in zip(keys, src_rows, strict=True)]
    manifest = json.loads(json.dumps(manifest))
    manifest["tables"] = [tmeta]
    tmeta["bias_key"] = tmeta.get("bias_key")
    if tmeta.get("vocab") is not None and dropped:
        tmeta["vocab"]["unknown_index"] = None
    toks = {} if info.get("row_labels") else {name: tokens}
    if info.get("row_labels"):
        tmeta["vocab"] = None
    try:
        model = model_from_manifest(manifest, {name: (InMemory(w), None)}, toks)
    except (KeyError, TypeError, ValueError) as e:
        raise UnreadableInputError(f"sidecar manifest is inconsistent: {e}", path=str(path)) from e
    model.source = output_source(model, path, container)
    return model
