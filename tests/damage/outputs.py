"""Aimed damage to embconv's own outputs: the kind a file's bytes can hold but no embconv ever
writes, each a well-formed container (the safetensors library, pyarrow or gensim still open
most of them) whose header, metadata or manifest says something impossible.

``CASES`` maps a case name to ``(seed format, build)``: ``build(original, damaged)`` writes the
damaged file (and its sidecar) at ``damaged`` from the untouched output ``original``. Seeds are
the outputs of ``tests._writer_models.collab_model`` (safetensors: both tables; word2vec and
Parquet: the ``userId`` table)."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEEP = 100_000  # nesting that overflows the interpreter's recursion limit (json is recursive)


# -- safetensors -------------------------------------------------------------------------------

def st_parts(path: Path) -> tuple[dict, bytes]:
    """(header dict, data section) of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def st_write(path: Path, header: dict | bytes, data: bytes) -> None:
    """A safetensors file of this header (a dict, or the JSON text itself) and data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def st_edit(edit: Callable[[dict], Any]) -> Callable[[Path, Path], None]:
    """A build that changes the header dict in place (the data section kept as it is)."""
    def build(original: Path, damaged: Path) -> None:
        header, data = st_parts(original)
        edit(header)
        st_write(damaged, header, data)
    return build


def st_text(edit: Callable[[str], str]) -> Callable[[Path, Path], None]:
    """A build that rewrites the header's JSON text (for what json.dumps cannot write)."""
    def build(original: Path, damaged: Path) -> None:
        header, data = st_parts(original)
        st_write(damaged, edit(json.dumps(header, separators=(",", ":"))).encode(), data)
    return build


def manifest_edit(edit: Callable[[dict], Any]) -> Callable[[dict], None]:
    """A header edit that changes the embedded manifest (parsed, edited, dumped back)."""
    def run(header: dict) -> None:
        m = json.loads(header["__metadata__"]["embconv.manifest"])
        edit(m)
        header["__metadata__"]["embconv.manifest"] = json.dumps(m)
    return run


def manifest_text(edit: Callable[[str], str]) -> Callable[[dict], None]:
    """A header edit that rewrites the embedded manifest's JSON text."""
    def run(header: dict) -> None:
        header["__metadata__"]["embconv.manifest"] = edit(header["__metadata__"]["embconv.manifest"])
    return run


def _table(m: dict, name: str = "userId") -> dict:
    return next(t for t in m["tables"] if t["name"] == name)


def _set(obj: dict, key: str, value: Any) -> None:
    obj[key] = value


def _reshape_weight(header: dict) -> None:
    header["userId.weight"]["shape"] = [4, 3, 2]  # same bytes, 3-D


def _overflow_shape(header: dict) -> None:
    # (2**62 + 6) * 4 elements * 4 bytes wraps to 96 in int64: exactly the tensor's 96 bytes
    header["userId.weight"]["shape"] = [2**62 + 6, 4]


def _huge_shape(header: dict) -> None:
    header["userId.weight"]["shape"] = [2**70, 6]


def _float_offsets(header: dict) -> None:
    a, b = header["userId.weight"]["data_offsets"]
    header["userId.weight"]["data_offsets"] = [float(a), float(b)]


def _float_shape(header: dict) -> None:
    header["userId.weight"]["shape"] = [4.0, 6.0]


def _bool_shape(header: dict) -> None:
    header["userId.weight"]["shape"] = [4, 6, True]  # the same 24 elements; a bool is no int


def _offsets_past_data(header: dict) -> None:
    info = header["userId.vocab.utf8"]  # the last tensor
    a, b = info["data_offsets"]
    info["data_offsets"] = [a + 8, b + 8]


def _offsets_reversed(header: dict) -> None:
    info = header["userId.weight"]
    a, b = info["data_offsets"]
    info["data_offsets"] = [b, a]
    info["shape"] = [-4, 6]


def _negative_dim(header: dict) -> None:
    header["userId.weight"]["shape"] = [-4, -6]


def _wrong_dtype_weight(header: dict) -> None:
    header["userId.weight"]["dtype"] = "I32"  # 4 bytes too: a weight of integers


def _unknown_dtype(header: dict) -> None:
    header["userId.weight"]["dtype"] = "F8_E4M3"


def _offsets_dtype(header: dict) -> None:
    info = header["userId.vocab.offsets"]
    info["dtype"] = "F64"


def _bias_2d(header: dict) -> None:
    header["userId.bias"]["shape"] = [2, 2]


def _bias_rows(header: dict) -> None:
    header["userId.bias"]["shape"] = [4]
    header["userId.bias"]["dtype"] = "F32"
    header["title.bias"]["shape"] = [1, 5]


def _data_offsets_three(header: dict) -> None:
    header["userId.weight"]["data_offsets"] = [244, 340, 340]


def _tensor_not_object(header: dict) -> None:
    header["userId.bias"] = [1, 2, 3]


def _metadata_value_number(header: dict) -> None:
    header["__metadata__"]["format"] = 7


def _nest(text: str, depth: int = DEEP) -> str:
    return "[" * depth + text + "]" * depth


def _dup_tensor_key(text: str) -> str:
    return text.replace('"userId.bias":', '"userId.bias":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
                        '"userId.bias":', 1)


def _dup_manifest_key(text: str) -> str:
    return text.replace('"tables":', '"tables": [], "tables":', 1)


def _nan_manifest_range(text: str) -> str:
    return text.replace('"y_range": [0.5, 5.5]', '"y_range": [NaN, 5.5]', 1)


def _infinite_size(text: str) -> str:
    return text.replace('"size": 123', '"size": 1e999', 1)


def _huge_int_size(text: str) -> str:
    return text.replace('"size": 123', '"size": ' + "9" * 5000, 1)


def _nan_offset(text: str) -> str:
    return text.replace('"data_offsets":[244,340]', '"data_offsets":[NaN,340]', 1)


def _deep_manifest(text: str) -> str:
    return text.replace('"warnings": []', '"warnings": ' + _nest("1"), 1)


# -- word2vec ----------------------------------------------------------------------------------

def w2v_header(line: str, with_sidecar: bool = True) -> Callable[[Path, Path], None]:
    """A build that replaces the header line (sidecar copied, or left out: a foreign file)."""
    def build(original: Path, damaged: Path) -> None:
        data = original.read_bytes()
        damaged.write_bytes(line.encode() + b"\n" + data[data.index(b"\n") + 1 :])
        if with_sidecar:
            _copy_sidecar(original, damaged)
    return build


def _copy_sidecar(original: Path, damaged: Path) -> None:
    side = original.with_name(original.name + ".manifest.json")
    if side.exists():
        shutil.copyfile(side, damaged.with_name(damaged.name + ".manifest.json"))


def sidecar(edit: Callable[[str], str]) -> Callable[[Path, Path], None]:
    """A build that rewrites the sidecar's JSON text (the word2vec file copied)."""
    def build(original: Path, damaged: Path) -> None:
        shutil.copyfile(original, damaged)
        side = original.with_name(original.name + ".manifest.json").read_text(encoding="utf-8")
        # surrogateescape: a lone "\udcXX" in the edited text is the raw byte 0xXX (not UTF-8)
        damaged.with_name(damaged.name + ".manifest.json").write_bytes(edit(side).encode("utf-8", "surrogateescape"))
    return build


def sidecar_edit(edit: Callable[[dict], Any]) -> Callable[[Path, Path], None]:
    def run(text: str) -> str:
        side = json.loads(text)
        edit(side)
        return json.dumps(side)
    return sidecar(run)


def side_manifest(edit: Callable[[dict], Any]) -> Callable[[dict], None]:
    return lambda side: edit(side["embconv.manifest"])


# -- Parquet -----------------------------------------------------------------------------------

def pq_rewrite(change: Callable[[Any, Any, dict], tuple[Any, dict]]) -> Callable[[Path, Path], None]:
    """A build that reads the table, lets ``change(pa, table, metadata)`` return a new (table,
    key-value metadata) and writes that."""
    def build(original: Path, damaged: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(original)
        meta = dict(pq.read_metadata(original).metadata or {})
        meta.pop(b"ARROW:schema", None)
        table, meta = change(pa, table, meta)
        pq.write_table(table.replace_schema_metadata(meta), damaged)
    return build


def pq_manifest(raw: Callable[[bytes], bytes]) -> Callable[[Path, Path], None]:
    """A build that replaces the ``embconv.manifest`` key-value (given the old bytes)."""
    def change(pa: Any, table: Any, meta: dict) -> tuple[Any, dict]:
        meta[b"embconv.manifest"] = raw(meta[b"embconv.manifest"])
        return table, meta
    return pq_rewrite(change)


def pq_manifest_edit(edit: Callable[[dict], Any]) -> Callable[[Path, Path], None]:
    def raw(old: bytes) -> bytes:
        m = json.loads(old)
        edit(m)
        return json.dumps(m).encode()
    return pq_manifest(raw)


def _pq_column(name: str, make: Callable[[Any, Any], Any] | None) -> Callable[[Any, Any, dict], tuple[Any, dict]]:
    """Replace column ``name`` by ``make(pa, column)`` (None: drop it)."""
    def change(pa: Any, table: Any, meta: dict) -> tuple[Any, dict]:
        i = table.schema.get_field_index(name)
        if make is None:
            return table.remove_column(i), meta
        col = make(pa, table.column(name))
        return table.set_column(i, pa.field(name, col.type), col), meta
    return change


def _as_list(pa: Any, col: Any) -> Any:
    return pa.array([v.as_py() for v in col], type=pa.list_(pa.float32()))


def _as_float64_vector(pa: Any, col: Any) -> Any:
    dim = len(col[0].as_py())
    return pa.array([v.as_py() for v in col], type=pa.list_(pa.float64(), dim))


def _row_as_int32(pa: Any, col: Any) -> Any:
    return col.cast(pa.int32())


def _token_as_binary(pa: Any, col: Any) -> Any:
    return col.cast(pa.binary())


def _token_bad_utf8(pa: Any, col: Any) -> Any:
    raw = [v.as_py().encode() for v in col]
    raw[1] = b"\xff" + raw[1]
    return pa.array(raw, pa.binary()).view(pa.string())  # a view: pyarrow does not validate it


def _row_nested(pa: Any, col: Any) -> Any:
    return pa.array([{"x": v.as_py()} for v in col])


Build = Callable[[Path, Path], None]

CASES: dict[str, tuple[str, Build]] = {
    # safetensors: the header
    "st-metadata-a-string": ("safetensors", st_edit(lambda h: _set(h, "__metadata__", "pt"))),
    "st-metadata-a-list": ("safetensors", st_edit(lambda h: _set(h, "__metadata__", ["format", "pt"]))),
    "st-metadata-value-a-number": ("safetensors", st_edit(_metadata_value_number)),
    "st-manifest-a-number": ("safetensors", st_edit(lambda h: _set(h["__metadata__"], "embconv.manifest", 7))),
    "st-manifest-null": ("safetensors", st_edit(lambda h: _set(h["__metadata__"], "embconv.manifest", None))),
    "st-manifest-an-object": ("safetensors", st_edit(lambda h: h["__metadata__"].update(
        {"embconv.manifest": json.loads(h["__metadata__"]["embconv.manifest"])}))),
    "st-shape-product-overflows": ("safetensors", st_edit(_overflow_shape)),
    "st-shape-beyond-int64": ("safetensors", st_edit(_huge_shape)),
    "st-shape-floats": ("safetensors", st_edit(_float_shape)),
    "st-shape-bools": ("safetensors", st_edit(_bool_shape)),
    "st-shape-negative": ("safetensors", st_edit(_negative_dim)),
    "st-offsets-floats": ("safetensors", st_edit(_float_offsets)),
    "st-offsets-nan": ("safetensors", st_text(_nan_offset)),
    "st-offsets-three": ("safetensors", st_edit(_data_offsets_three)),
    "st-offsets-past-data": ("safetensors", st_edit(_offsets_past_data)),
    "st-offsets-reversed": ("safetensors", st_edit(_offsets_reversed)),
    "st-tensor-not-an-object": ("safetensors", st_edit(_tensor_not_object)),
    "st-dtype-unknown": ("safetensors", st_edit(_unknown_dtype)),
    "st-weight-of-integers": ("safetensors", st_edit(_wrong_dtype_weight)),
    "st-offsets-of-floats": ("safetensors", st_edit(_offsets_dtype)),
    "st-weight-3d": ("safetensors", st_edit(_reshape_weight)),
    "st-bias-2d": ("safetensors", st_edit(_bias_2d)),
    "st-bias-wrong-shape": ("safetensors", st_edit(_bias_rows)),
    "st-header-deeply-nested": ("safetensors", st_text(lambda t: t[:-1] + ',"x":' + _nest("1") + "}")),
    "st-header-duplicate-key": ("safetensors", st_text(_dup_tensor_key)),
    "st-header-huge-int": ("safetensors", st_text(lambda t: t.replace('"data_offsets":[244,340]',
                                                                       '"data_offsets":[' + "9" * 5000 + ",340]", 1))),
    # safetensors: the embedded manifest
    "manifest-tied-keys-ints": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "tied_keys", [1])))),
    "manifest-tied-keys-a-string": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(_table(m), "tied_keys", "userId.weight")))),
    "manifest-rows-a-bool": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "rows", True)))),
    "manifest-rows-a-float": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "rows", 4.0)))),
    "manifest-rows-wrong": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "rows", 5)))),
    "manifest-dim-wrong": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "dim", 2)))),
    "manifest-dtype-unknown": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "dtype", "int8")))),
    "manifest-name-empty": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m, "title"), "name", "")))),
    "manifest-name-a-number": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "name", 7)))),
    "manifest-weight-key-null": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "weight_key", None)))),
    "manifest-bias-key-a-number": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "bias_key", 3)))),
    "manifest-table-extra-field": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m), "extra", 1)))),
    "manifest-vocab-size-a-string": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(_table(m)["vocab"], "size", "4")))),
    "manifest-vocab-size-wrong": ("safetensors", st_edit(manifest_edit(lambda m: _set(_table(m)["vocab"], "size", 9)))),
    "manifest-unknown-index-a-bool": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(_table(m)["vocab"], "unknown_index", True)))),
    "manifest-unknown-index-out-of-range": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(_table(m)["vocab"], "unknown_index", 99)))),
    "manifest-unknown-index-negative": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(_table(m)["vocab"], "unknown_index", -1)))),
    "manifest-vocab-source-a-number": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(_table(m)["vocab"], "source", 1)))),
    "manifest-vocab-tokens-ints": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(_table(m)["vocab"], "tokens", [1, 2, 3, 4])))),
    "manifest-y-range-strings": ("safetensors", st_edit(manifest_edit(lambda m: _set(m["model"], "y_range", ["a", "b"])))),
    "manifest-y-range-three": ("safetensors", st_edit(manifest_edit(lambda m: _set(m["model"], "y_range", [1, 2, 3])))),
    "manifest-y-range-bools": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(m["model"], "y_range", [False, True])))),
    "manifest-y-range-nan": ("safetensors", st_edit(manifest_text(_nan_manifest_range))),
    "manifest-kind-a-number": ("safetensors", st_edit(manifest_edit(lambda m: _set(m["model"], "kind", 1)))),
    "manifest-model-null": ("safetensors", st_edit(manifest_edit(lambda m: _set(m, "model", None)))),
    "manifest-model-class-a-number": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(m["source"], "model_class", 1)))),
    "manifest-size-a-bool": ("safetensors", st_edit(manifest_edit(lambda m: _set(m["source"], "size", False)))),
    "manifest-size-negative": ("safetensors", st_edit(manifest_edit(lambda m: _set(m["source"], "size", -1)))),
    "manifest-size-infinite": ("safetensors", st_edit(manifest_text(_infinite_size))),
    "manifest-size-5000-digits": ("safetensors", st_edit(manifest_text(_huge_int_size))),
    "manifest-sha256-not-hex": ("safetensors", st_edit(manifest_edit(lambda m: _set(m["source"], "sha256", "x")))),
    "manifest-sha256-a-number": ("safetensors", st_edit(manifest_edit(lambda m: _set(m["source"], "sha256", 0)))),
    "manifest-schema-version-a-bool": ("safetensors", st_edit(manifest_edit(lambda m: _set(m, "schema_version", True)))),
    "manifest-schema-version-missing": ("safetensors", st_edit(manifest_edit(lambda m: m.pop("schema_version")))),
    "manifest-embconv-version-a-number": ("safetensors", st_edit(manifest_edit(
        lambda m: _set(m, "embconv_version", 1.0)))),
    "manifest-warning-a-number": ("safetensors", st_edit(manifest_edit(lambda m: _set(m, "warnings", [7])))),
    "manifest-warning-v1-in-v2": ("safetensors", st_edit(manifest_edit(lambda m: _set(m, "warnings", ["a note"])))),
    "manifest-warning-bad-code": ("safetensors", st_edit(manifest_edit(lambda m: _set(
        m, "warnings", [{"code": "Not A Code", "table": None, "message": "x"}])))),
    "manifest-warning-table-a-number": ("safetensors", st_edit(manifest_edit(lambda m: _set(
        m, "warnings", [{"code": "note", "table": 1, "message": "x"}])))),
    "manifest-extra-top-field": ("safetensors", st_edit(manifest_edit(lambda m: _set(m, "extra", {})))),
    "manifest-deeply-nested": ("safetensors", st_edit(manifest_text(_deep_manifest))),
    "manifest-nested-a-list": ("safetensors", st_edit(manifest_text(lambda t: _nest("1")))),
    "manifest-duplicate-key": ("safetensors", st_edit(manifest_text(_dup_manifest_key))),
    # word2vec: the header line and the sidecar
    "w2v-count-negative": ("vec", w2v_header("-4 6")),
    "w2v-dim-negative": ("vec", w2v_header("4 -6")),
    "w2v-count-huge": ("vec", w2v_header(f"{2**40} 6")),
    "w2v-count-beyond-int64": ("vec", w2v_header(f"{2**70} 6")),
    "w2v-dim-huge": ("vec", w2v_header(f"4 {2**40}")),
    "w2v-count-5000-digits": ("vec", w2v_header("9" * 5000 + " 6")),
    "w2v-count-a-float": ("vec", w2v_header("4.0 6")),
    "w2v-dim-5000-digits": ("vec", w2v_header("4 " + "9" * 5000)),
    "w2v-dim-wrong": ("vec", w2v_header("4 3")),
    "w2v-no-rows-dim-beyond-int64": ("vec", w2v_header("0 9999999999999999999")),
    "w2v-bin-no-rows-dim-beyond-int64": ("bin", w2v_header("0 9999999999999999999")),
    "w2v-foreign-no-rows-dim-beyond-int64": ("vec", w2v_header("0 9999999999999999999", with_sidecar=False)),
    "w2v-foreign-bin-no-rows-dim-huge": ("bin", w2v_header(f"0 {2**61}", with_sidecar=False)),
    "w2v-foreign-bin-count-huge": ("bin", w2v_header(f"{2**40} 6", with_sidecar=False)),
    "w2v-bin-count-huge": ("bin", w2v_header(f"{2**40} 6")),
    "w2v-bin-dim-huge": ("bin", w2v_header(f"4 {2**61}")),
    "w2v-bin-count-beyond-int64": ("bin", w2v_header(f"{2**70} 6")),
    "w2v-sidecar-deeply-nested": ("vec", sidecar(lambda t: '{"embconv.word2vec": ' + _nest("1") + "}")),
    "w2v-sidecar-nan": ("vec", sidecar(lambda t: t.replace('"y_range": [0.5, 5.5]', '"y_range": [NaN, 5.5]', 1)
                                       .replace('"y_range": [\n    0.5', '"y_range": [\n    NaN', 1))),
    "w2v-sidecar-duplicate-key": ("vec", sidecar(lambda t: t.replace('"embconv.word2vec":',
                                                                     '"embconv.word2vec": 1, "embconv.word2vec":', 1))),
    "w2v-sidecar-manifest-null": ("vec", sidecar_edit(lambda s: _set(s, "embconv.manifest", None))),
    "w2v-sidecar-tied-keys-ints": ("vec", sidecar_edit(side_manifest(lambda m: _set(_table(m), "tied_keys", [1])))),
    "w2v-sidecar-rows-wrong": ("vec", sidecar_edit(side_manifest(lambda m: _set(_table(m), "rows", 7)))),
    "w2v-sidecar-dropped-rows-strings": ("vec", sidecar_edit(lambda s: _set(s["embconv.word2vec"], "dropped_rows",
                                                                            ["0"]))),
    "w2v-sidecar-renamed-rows-floats": ("vec", sidecar_edit(lambda s: _set(s["embconv.word2vec"], "renamed_rows",
                                                                           [1.5]))),
    "w2v-sidecar-dropped-rows-huge": ("vec", sidecar_edit(lambda s: _set(s["embconv.word2vec"], "dropped_rows",
                                                                         [2**70]))),
    "w2v-sidecar-table-a-number": ("vec", sidecar_edit(lambda s: _set(s["embconv.word2vec"], "table", 1))),
    "w2v-sidecar-row-labels-a-string": ("vec", sidecar_edit(lambda s: _set(s["embconv.word2vec"], "row_labels",
                                                                           "no"))),
    "w2v-sidecar-a-list": ("vec", sidecar(lambda t: "[1, 2]")),
    "w2v-sidecar-format-binary": ("vec", sidecar_edit(lambda s: _set(s["embconv.word2vec"], "format",
                                                                     "word2vec-binary"))),
    "w2v-sidecar-dropped-not-unknown": ("vec", sidecar_edit(lambda s: _set(s["embconv.word2vec"], "dropped_rows",
                                                                           [2]))),
    "w2v-sidecar-unknown-index-out-of-range": ("vec", sidecar_edit(side_manifest(
        lambda m: _set(_table(m)["vocab"], "unknown_index", 4)))),
    "w2v-sidecar-not-utf8": ("vec", sidecar(lambda t: t.replace('"userId"', '"user\udcff"', 1))),
    # Parquet: the schema and the key-value manifest
    "pq-vector-missing": ("parquet", pq_rewrite(_pq_column("vector", None))),
    "pq-vector-a-list": ("parquet", pq_rewrite(_pq_column("vector", _as_list))),
    "pq-vector-float64": ("parquet", pq_rewrite(_pq_column("vector", _as_float64_vector))),
    "pq-row-int32": ("parquet", pq_rewrite(_pq_column("row", _row_as_int32))),
    "pq-row-a-struct": ("parquet", pq_rewrite(_pq_column("row", _row_nested))),
    "pq-token-binary": ("parquet", pq_rewrite(_pq_column("token", _token_as_binary))),
    "pq-manifest-not-json": ("parquet", pq_manifest(lambda old: b"{not json")),
    "pq-manifest-not-utf8": ("parquet", pq_manifest(lambda old: b"\xff\xfe")),
    "pq-manifest-a-number": ("parquet", pq_manifest(lambda old: b"7")),
    "pq-manifest-null": ("parquet", pq_manifest(lambda old: b"null")),
    "pq-manifest-deeply-nested": ("parquet", pq_manifest(lambda old: _nest("1").encode())),
    "pq-manifest-nan": ("parquet", pq_manifest(lambda old: old.replace(b"[0.5, 5.5]", b"[NaN, 5.5]"))),
    "pq-manifest-dim-a-string": ("parquet", pq_manifest_edit(lambda m: _set(_table(m), "dim", "6"))),
    "pq-manifest-rows-a-float": ("parquet", pq_manifest_edit(lambda m: _set(_table(m), "rows", 4.0))),
    "pq-manifest-vocab-size-a-string": ("parquet", pq_manifest_edit(lambda m: _set(_table(m)["vocab"], "size", "4"))),
    "pq-manifest-unknown-index-a-string": ("parquet", pq_manifest_edit(
        lambda m: _set(_table(m)["vocab"], "unknown_index", "0"))),
    "pq-token-not-utf8": ("parquet", pq_rewrite(_pq_column("token", _token_bad_utf8))),
    "pq-manifest-tied-keys-ints": ("parquet", pq_manifest_edit(lambda m: _set(_table(m), "tied_keys", [1]))),
}
