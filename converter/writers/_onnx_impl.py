"""The ONNX writer and reader proper (graph, streamed initializers, read-back, checker): the
onnx library is imported here only, and this module only when an ONNX file is written, read or
checked (onnx.py, which registers the format and sniffs it, never imports either: the onnx
library takes ~40 ms to import and most runs never touch it). The layout is onnx.py's docstring."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..chunks import bias_chunks, output_dtype
from ..errors import OutputError, UnreadableInputError
from ..ir import EmbeddingModel, EmbeddingTable
from ..lazy import InMemory, PackedStrings, encoded
from ._common import ProgressCounter, check_manifest, model_from_output, write_weight
from .onnx import ALIGN, IR_VERSION, LAYOUT, ML_OPSET, OPSET, data_path, needs_external
from .registry import Progress

_ONNX_FLOAT = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(tag: int) -> bytes:
    return _varint((tag << 3) | 2)


def _collab_pair(model: EmbeddingModel) -> tuple[EmbeddingTable, EmbeddingTable] | None:
    if model.model.kind != "collab-dot":
        return None
    users = [t for t in model.tables.values() if t.role == "user"]
    items = [t for t in model.tables.values() if t.role == "item"]
    if len(users) != 1 or len(items) != 1:
        return None
    u, i = users[0], items[0]
    if u.vocab is None or i.vocab is None or u.bias_source is None or i.bias_source is None or u.dim != i.dim:
        return None
    return u, i


_KEY_CHUNK = 1 << 16


def _fill_label_encoder(node: onnx.NodeProto, strings: Any) -> None:
    """Add ``keys_strings`` (every token's UTF-8) and ``values_int64s`` (0..n-1) to a
    LabelEncoder node that is already inside its model, a chunk at a time: a million keys
    never exist as Python lists, and protobuf never copies them from message to message."""
    keys = node.attribute.add(name="keys_strings", type=onnx.AttributeProto.STRINGS)
    for start in range(0, len(strings), _KEY_CHUNK):
        data, offsets = encoded(strings, start, min(len(strings), start + _KEY_CHUNK))
        bounds = offsets.tolist()
        keys.strings.extend(data[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
    values = node.attribute.add(name="values_int64s", type=onnx.AttributeProto.INTS)
    values.ints.extend(range(len(strings)))


def _label_tokens(keys: Any, values: Any, name: str, path: Path) -> list[str] | PackedStrings:
    """The tokens of a LabelEncoder read back, row by row. embconv writes keys in row order
    (values 0..n-1): they are packed a chunk at a time without a Python list; other orders are
    sorted by value."""
    n = len(values)
    if len(keys) != n:
        raise UnreadableInputError(f"table {name!r}: LabelEncoder has {len(keys)} keys but {n} values",
                                   path=str(path))
    rows = np.fromiter(values, dtype=np.int64, count=n)
    if not np.array_equal(rows, np.arange(n)):
        if not np.array_equal(np.sort(rows), np.arange(n)):
            raise UnreadableInputError(f"table {name!r}: LabelEncoder values are not the rows", path=str(path))
        toks = [""] * n
        for k, v in zip(keys, rows.tolist(), strict=True):
            toks[v] = k.decode("utf-8", "surrogatepass")
        return toks
    pieces, lengths = [], []
    for start in range(0, n, _KEY_CHUNK):
        chunk = keys[start : start + _KEY_CHUNK]
        joined = b"".join(chunk)
        if len(joined.decode("utf-8", "surrogatepass")) != len(joined):  # not ASCII: check each key
            for k in chunk:
                k.decode("utf-8", "surrogatepass")
        pieces.append(joined)
        lengths.append(np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)))
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return PackedStrings(np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets)


def _graph(model: EmbeddingModel, dtype: str) -> tuple[onnx.GraphProto, list[tuple[str, EmbeddingTable, str]]]:
    """The graph without the big tables, and the big tensors to append: (name, table, 'weight'|'bias')."""
    elem = _ONNX_FLOAT[dtype]
    np_dtype = output_dtype(dtype)
    nodes, inputs, outputs, inits = [], [], [], []
    big: list[tuple[str, EmbeddingTable, str]] = []
    for t in model.tables.values():
        n = t.name
        big.append((f"{n}.weight", t, "weight"))
        if t.bias_source is not None:
            big.append((f"{n}.bias", t, "bias"))
        inputs.append(helper.make_tensor_value_info(f"{n}.index", TensorProto.INT64, [f"{n}.N"]))
        inits.append(numpy_helper.from_array(np.zeros(0, dtype=np.int64), f"{n}.index"))
        nodes.append(helper.make_node("Gather", [f"{n}.weight", f"{n}.index"], [f"{n}.vectors"], axis=0))
        outputs.append(helper.make_tensor_value_info(f"{n}.vectors", elem, [f"{n}.N", t.dim]))
        if t.vocab is None:
            continue
        unk = t.vocab.unknown_index
        inputs.append(helper.make_tensor_value_info(f"{n}.id", TensorProto.STRING, [f"{n}.M"]))
        inits.append(numpy_helper.from_array(np.array([], dtype=object), f"{n}.id"))
        # keys and values are added once the node is inside the model (_fill_label_encoder); an
        # unseen id gives -1, so that <t>.found can tell it from the #na# token itself
        nodes.append(helper.make_node("LabelEncoder", [f"{n}.id"], [f"{n}.row"], domain="ai.onnx.ml",
                                      default_int64=-1))
        inits.append(numpy_helper.from_array(np.zeros(1, dtype=np.int64), f"{n}.zero"))
        nodes.append(helper.make_node("GreaterOrEqual", [f"{n}.row", f"{n}.zero"], [f"{n}.found"]))
        if unk is None:
            inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), f"{n}.axis1"))
            inits.append(numpy_helper.from_array(np.array(np.nan, dtype=np_dtype), f"{n}.nan"))
            nodes += [
                helper.make_node("Max", [f"{n}.row", f"{n}.zero"], [f"{n}.safe_row"]),
                helper.make_node("Gather", [f"{n}.weight", f"{n}.safe_row"], [f"{n}.raw_by_id"], axis=0),
                helper.make_node("Unsqueeze", [f"{n}.found", f"{n}.axis1"], [f"{n}.found2"]),
                helper.make_node("Where", [f"{n}.found2", f"{n}.raw_by_id", f"{n}.nan"], [f"{n}.vectors_by_id"]),
            ]
        else:
            inits.append(numpy_helper.from_array(np.array(int(unk), dtype=np.int64), f"{n}.unknown_row"))
            nodes += [
                helper.make_node("Where", [f"{n}.found", f"{n}.row", f"{n}.unknown_row"], [f"{n}.safe_row"]),
                helper.make_node("Gather", [f"{n}.weight", f"{n}.safe_row"], [f"{n}.vectors_by_id"], axis=0),
            ]
        outputs.append(helper.make_tensor_value_info(f"{n}.vectors_by_id", elem, [f"{n}.M", t.dim]))
        outputs.append(helper.make_tensor_value_info(f"{n}.found", TensorProto.BOOL, [f"{n}.M"]))
    pair = _collab_pair(model)
    if pair is not None:
        nodes += _rating_nodes(model, pair, dtype, inits)
        outputs.append(helper.make_tensor_value_info("rating", TensorProto.FLOAT, [f"{pair[0].name}.M"]))
    graph = helper.make_graph(nodes, "embconv", inputs, outputs, initializer=inits)
    return graph, big


def _rating_nodes(model: EmbeddingModel, pair: tuple[EmbeddingTable, EmbeddingTable], dtype: str,
                  inits: list) -> list:
    u, i = pair
    nodes = []

    def f32(name: str) -> str:
        if dtype == "float32":
            return name
        nodes.append(helper.make_node("Cast", [name], [f"{name}.f32"], to=TensorProto.FLOAT))
        return f"{name}.f32"

    # Pairs up to the shorter of the two id inputs, so feeding only one table's ids (the other
    # defaults to empty) gives an empty rating instead of a broadcast error.
    inits.append(numpy_helper.from_array(np.zeros(1, dtype=np.int64), "rating.start"))
    nodes += [
        helper.make_node("Shape", [f"{u.name}.safe_row"], ["rating.n_users"]),
        helper.make_node("Shape", [f"{i.name}.safe_row"], ["rating.n_items"]),
        helper.make_node("Min", ["rating.n_users", "rating.n_items"], ["rating.n"]),
    ]
    for tab, who in ((u, "user"), (i, "item")):
        nodes += [
            helper.make_node("Slice", [f"{tab.name}.safe_row", "rating.start", "rating.n", "rating.start"],
                             [f"rating.{who}_row"]),
            helper.make_node("Slice", [f"{tab.name}.vectors_by_id", "rating.start", "rating.n", "rating.start"],
                             [f"rating.{who}_vectors"]),
            helper.make_node("Gather", [f"{tab.name}.bias", f"rating.{who}_row"], [f"rating.{who}_bias"], axis=0),
        ]
    uv, iv = f32("rating.user_vectors"), f32("rating.item_vectors")
    ub, ib = f32("rating.user_bias"), f32("rating.item_bias")
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "rating.axes"))
    y = model.model.y_range
    last = "rating" if y is None else "rating.raw"
    nodes += [
        helper.make_node("Mul", [uv, iv], ["rating.products"]),
        helper.make_node("ReduceSum", ["rating.products", "rating.axes"], ["rating.dot"], keepdims=0),
        helper.make_node("Add", ["rating.dot", ub], ["rating.dot_ub"]),
        helper.make_node("Add", ["rating.dot_ub", ib], [last]),
    ]
    if y is not None:
        lo, hi = y
        inits.append(numpy_helper.from_array(np.array(hi - lo, dtype=np.float32), "rating.scale"))
        inits.append(numpy_helper.from_array(np.array(lo, dtype=np.float32), "rating.low"))
        nodes += [
            helper.make_node("Sigmoid", ["rating.raw"], ["rating.sigmoid"]),
            helper.make_node("Mul", ["rating.sigmoid", "rating.scale"], ["rating.scaled"]),
            helper.make_node("Add", ["rating.scaled", "rating.low"], ["rating"]),
        ]
    return nodes


def _stream_tensor(f: BinaryIO, t: EmbeddingTable, part: str, dtype: np.dtype, counter: ProgressCounter) -> int:
    """Write a table's weight or bias bytes to ``f``; return the byte count."""
    n = 0
    if part == "weight":
        n = write_weight(f, t, dtype, counter)
    else:
        if t.bias_source is None or int(np.prod(t.bias_source.shape, dtype=np.int64)) != t.rows:
            raise OutputError(f"table {t.name!r}: bias does not have {t.rows} rows")
        for chunk in bias_chunks(t, dtype):
            f.write(chunk.data.cast("B"))
            n += chunk.nbytes
    return n


def write(model: EmbeddingModel, path: Path, *, dtype: str = "float32", progress: Progress | None = None,
          drop_unknown: bool = False, external_data: bool | None = None, **options: Any) -> None:
    """Write ``model`` as ONNX to ``path`` (plus ``path.data`` when external data is used)."""
    np_dtype = output_dtype(dtype)
    graph, big = _graph(model, dtype)
    external = needs_external(model, dtype) if external_data is None else external_data
    counter = ProgressCounter(sum(t.rows for t in model.tables.values()), progress)
    shapes = {name: ([t.rows, t.dim] if part == "weight" else [t.rows]) for name, t, part in big}
    if external:
        offsets: dict[str, tuple[int, int]] = {}
        with open(data_path(path), "wb") as f:
            for name, t, part in big:
                pad = -f.tell() % ALIGN
                f.write(b"\0" * pad)
                start = f.tell()
                offsets[name] = (start, _stream_tensor(f, t, part, np_dtype, counter))
        for name, _t, _part in big:
            tp = TensorProto(name=name, dims=shapes[name], data_type=_ONNX_FLOAT[dtype])
            tp.data_location = TensorProto.EXTERNAL
            for k, v in (("location", data_path(path).name), ("offset", str(offsets[name][0])),
                         ("length", str(offsets[name][1]))):
                e = tp.external_data.add()
                e.key, e.value = k, v
            graph.initializer.append(tp)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
                          ir_version=IR_VERSION, producer_name="embconv", producer_version=_version())
    encoders = {node.output[0]: node for node in m.graph.node if node.op_type == "LabelEncoder"}
    for t in model.tables.values():
        if t.vocab is not None:
            _fill_label_encoder(encoders[f"{t.name}.row"], t.vocab.strings)
    helper.set_model_props(m, {"embconv.manifest": model.manifest_json(include_tokens=False), "embconv.layout": LAYOUT})
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
        if not external:
            for name, t, part in big:
                head = TensorProto(name=name, dims=shapes[name], data_type=_ONNX_FLOAT[dtype]).SerializeToString()
                nbytes = int(np.prod(shapes[name], dtype=np.int64)) * np_dtype.itemsize
                tensor = head + _key(9) + _varint(nbytes)
                tensor_len = len(tensor) + nbytes
                initializer = _key(5) + _varint(tensor_len)
                graph_len = len(initializer) + tensor_len
                f.write(_key(7) + _varint(graph_len) + initializer + tensor)
                if _stream_tensor(f, t, part, np_dtype, counter) != nbytes:
                    raise OutputError(f"tensor {name!r}: wrote a wrong number of bytes", path=str(path))


def _version() -> str:
    from .. import __version__
    return __version__


def check(path: Path) -> None:
    """onnx.checker full check (shape inference included)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        raise OutputError(f"onnx.checker rejects the written model: {e}", path=str(path)) from e


def _initializer_array(tp: TensorProto, path: Path) -> np.ndarray:
    """An initializer's values (external data memory-mapped); a damaged one is
    UnreadableInputError naming the tensor."""
    try:
        return _initializer_values(tp, path)
    except (KeyError, ValueError, TypeError, OSError) as e:  # unknown type, short data, missing file
        raise UnreadableInputError(f"tensor {tp.name!r}: {e}", path=str(path)) from e


def _initializer_values(tp: TensorProto, path: Path) -> np.ndarray:
    if tp.data_location == TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tp.external_data}
        loc = info.get("location", "")
        if os.path.isabs(loc) or ".." in Path(loc).parts:
            raise UnreadableInputError(f"tensor {tp.name!r}: external data location {loc!r} is not allowed",
                                       path=str(path))
        dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tp.data_type)).newbyteorder("<")
        shape = tuple(tp.dims)
        if int(np.prod(shape, dtype=np.int64)) == 0:
            return np.zeros(shape, dtype=dt)
        return np.memmap(path.with_name(loc), dtype=dt, mode="r", offset=int(info.get("offset", 0)), shape=shape)
    return numpy_helper.to_array(tp)


def read(path: Path) -> EmbeddingModel:
    """Read an embconv ONNX model back into the IR."""
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf decode errors have several types
        raise UnreadableInputError(f"not a readable ONNX model: {e}", path=str(path)) from e
    try:
        props = {p.key: p.value for p in m.metadata_props}
        if "embconv.manifest" not in props:
            raise UnreadableInputError("ONNX model has no embconv.manifest in metadata_props", path=str(path))
        manifest = json.loads(props["embconv.manifest"])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnreadableInputError(f"embconv.manifest is unreadable: {e}", path=str(path)) from e
    check_manifest(manifest, path)
    inits = {tp.name: tp for tp in m.graph.initializer}
    encoders = {n.output[0]: n for n in m.graph.node if n.op_type == "LabelEncoder"}
    arrays: dict[str, tuple[Any, Any]] = OrderedDict()
    tokens: dict[str, Sequence[str]] = {}
    for t in manifest["tables"]:
        name = t["name"]
        if f"{name}.weight" not in inits:
            raise UnreadableInputError(f"table {name!r}: initializer {name}.weight is missing", path=str(path))
        w = _initializer_array(inits[f"{name}.weight"], path)
        b = _initializer_array(inits[f"{name}.bias"], path) if f"{name}.bias" in inits else None
        arrays[name] = (InMemory(w), InMemory(b) if b is not None else None)
        if t.get("vocab") is not None:
            node = encoders.get(f"{name}.row")
            if node is None:
                raise UnreadableInputError(f"table {name!r}: its LabelEncoder is missing", path=str(path))
            attrs = {a.name: a for a in node.attribute}
            if "keys_strings" not in attrs or "values_int64s" not in attrs:
                raise UnreadableInputError(f"table {name!r}: its LabelEncoder lacks keys or values", path=str(path))
            try:
                tokens[name] = _label_tokens(attrs["keys_strings"].strings, attrs["values_int64s"].ints, name, path)
            except UnicodeDecodeError as e:
                raise UnreadableInputError(f"table {name!r}: a LabelEncoder key is not UTF-8: {e}",
                                           path=str(path)) from e
    return model_from_output(manifest, arrays, tokens, path, "onnx")
