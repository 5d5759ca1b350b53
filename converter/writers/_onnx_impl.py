"""The ONNX writer and reader proper (graph, streamed initializers, read-back, checker): the
onnx library is imported here only, and this module only when an ONNX file is written, read or
checked (onnx.py, which registers the format and sniffs it, never imports either: the onnx
library takes ~40 ms to import and most runs never touch it). The layout is onnx.py's docstring."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..chunks import bias_chunks, output_dtype
from ..errors import OutputError, ResourceLimitError, UnreadableInputError
from ..ir import EmbeddingModel, EmbeddingTable
from ..lazy import InMemory, PackedStrings, encoded
from ._common import ProgressCounter, check_manifest, model_from_output, write_weight
from .onnx import ALIGN, IR_VERSION, LAYOUT, ML_OPSET, OPSET, data_path, needs_external
from .registry import Progress

READ_LAYOUTS = ("1", LAYOUT)  # 1: inputs were also initializers (overridable empty defaults)
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
    if u.bias_source is None or i.bias_source is None or u.dim != i.dim:
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
    """The graph without the big tables, and the big tensors to append: (name, table, 'weight'|'bias').
    Inputs are plain graph inputs (no initializer of that name, so not overridable defaults):
    onnxruntime lists them under ``get_inputs()`` and logs nothing at load; every initializer is
    used by a node, so onnxruntime removes none (and says nothing about it)."""
    elem = _ONNX_FLOAT[dtype]
    np_dtype = output_dtype(dtype)
    nodes, inputs, outputs, inits = [], [], [], []
    big: list[tuple[str, EmbeddingTable, str]] = []
    for t in model.tables.values():
        n = t.name
        big.append((f"{n}.weight", t, "weight"))
        has_bias = t.bias_source is not None
        if has_bias:
            big.append((f"{n}.bias", t, "bias"))
        inputs.append(helper.make_tensor_value_info(f"{n}.index", TensorProto.INT64, [f"{n}.N"]))
        nodes.append(helper.make_node("Gather", [f"{n}.weight", f"{n}.index"], [f"{n}.vectors"], axis=0))
        outputs.append(helper.make_tensor_value_info(f"{n}.vectors", elem, [f"{n}.N", t.dim]))
        if has_bias:
            nodes.append(helper.make_node("Gather", [f"{n}.bias", f"{n}.index"], [f"{n}.biases"], axis=0))
            outputs.append(helper.make_tensor_value_info(f"{n}.biases", elem, [f"{n}.N"]))
        if t.vocab is None:
            continue
        unk = t.vocab.unknown_index
        inputs.append(helper.make_tensor_value_info(f"{n}.id", TensorProto.STRING, [f"{n}.M"]))
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
            if has_bias:
                nodes += [
                    helper.make_node("Gather", [f"{n}.bias", f"{n}.safe_row"], [f"{n}.raw_biases_by_id"], axis=0),
                    helper.make_node("Where", [f"{n}.found", f"{n}.raw_biases_by_id", f"{n}.nan"],
                                     [f"{n}.biases_by_id"]),
                ]
        else:
            inits.append(numpy_helper.from_array(np.array(int(unk), dtype=np.int64), f"{n}.unknown_row"))
            nodes += [
                helper.make_node("Where", [f"{n}.found", f"{n}.row", f"{n}.unknown_row"], [f"{n}.safe_row"]),
                helper.make_node("Gather", [f"{n}.weight", f"{n}.safe_row"], [f"{n}.vectors_by_id"], axis=0),
            ]
            if has_bias:
                nodes.append(helper.make_node("Gather", [f"{n}.bias", f"{n}.safe_row"], [f"{n}.biases_by_id"],
                                              axis=0))
        outputs.append(helper.make_tensor_value_info(f"{n}.vectors_by_id", elem, [f"{n}.M", t.dim]))
        if has_bias:
            outputs.append(helper.make_tensor_value_info(f"{n}.biases_by_id", elem, [f"{n}.M"]))
        outputs.append(helper.make_tensor_value_info(f"{n}.found", TensorProto.BOOL, [f"{n}.M"]))
    pair = _collab_pair(model)
    if pair is not None:
        u, i = pair
        inits.append(numpy_helper.from_array(np.zeros(1, dtype=np.int64), "rating.zero"))
        inits.append(numpy_helper.from_array(np.ones(1, dtype=np.int64), "rating.one"))
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "rating.axes"))
        y = model.model.y_range
        if y is not None:
            lo, hi = y
            inits.append(numpy_helper.from_array(np.array(hi - lo, dtype=np.float32), "rating.scale"))
            inits.append(numpy_helper.from_array(np.array(lo, dtype=np.float32), "rating.low"))
        by_id = u.vocab is not None and i.vocab is not None  # rating (by id) needs both vocabularies
        for out, by in (("rating", "id"), ("rating_by_index", "index"))[0 if by_id else 1:]:
            suffix = "" if by == "index" else "_by_id"
            nodes += _rating_nodes(out, y is not None, dtype,
                                   (f"{u.name}.vectors{suffix}", f"{u.name}.biases{suffix}", f"{u.name}.{by}"),
                                   (f"{i.name}.vectors{suffix}", f"{i.name}.biases{suffix}", f"{i.name}.{by}"))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [f"{out}.N"]))
    graph = helper.make_graph(nodes, "embconv", inputs, outputs, initializer=inits)
    return graph, big


def _rating_nodes(out: str, y_range: bool, dtype: str, user: tuple[str, str, str],
                  item: tuple[str, str, str]) -> list:
    """fastai's forward for position-by-position (user, item) pairs, from the vectors and biases
    the graph already gathered (by id or by index). ``user``/``item``: (vectors, biases, input).

    The two inputs must have the same length: where both are non-empty and their lengths differ,
    a Gather whose node name says so reads index |N - M| of a one-element tensor, which
    onnxruntime refuses ("indices element out of data bounds") — the run fails rather than pairing
    a truncated list. onnxruntime runs every node whatever outputs are asked for, so an empty
    input (a caller that wants only the other table's vectors) is allowed and gives an empty
    ``out``. The check's result (a zero) is the start of the Slices below, so it is on the data path."""
    (uv, ub, uin), (iv, ib, iin) = user, item
    p = f"{out}."
    nodes = [
        helper.make_node("Shape", [ub], [p + "n_user"]),
        helper.make_node("Shape", [ib], [p + "n_item"]),
        helper.make_node("Min", [p + "n_user", p + "n_item"], [p + "n"]),
        helper.make_node("Min", [p + "n", "rating.one"], [p + "both_fed"]),
        helper.make_node("Sub", [p + "n_user", p + "n_item"], [p + "difference"]),
        helper.make_node("Abs", [p + "difference"], [p + "distance"]),
        helper.make_node("Mul", [p + "distance", p + "both_fed"], [p + "mismatch"]),
        helper.make_node("Gather", ["rating.zero", p + "mismatch"], [p + "start"], axis=0,
                         name=f"{out}: inputs {uin} and {iin} have different lengths"),
    ]

    def part(name: str, who: str) -> str:
        nodes.append(helper.make_node("Slice", [name, p + "start", p + "n", "rating.zero"], [p + who]))
        if dtype == "float32":
            return p + who
        nodes.append(helper.make_node("Cast", [p + who], [p + who + ".f32"], to=TensorProto.FLOAT))
        return p + who + ".f32"

    u_vec, i_vec, u_bias, i_bias = part(uv, "user_vectors"), part(iv, "item_vectors"), part(ub, "user_bias"), \
        part(ib, "item_bias")
    last = p + "raw" if y_range else out
    nodes += [
        helper.make_node("Mul", [u_vec, i_vec], [p + "products"]),
        helper.make_node("ReduceSum", [p + "products", "rating.axes"], [p + "dot"], keepdims=0),
        helper.make_node("Add", [p + "dot", u_bias], [p + "dot_ub"]),
        helper.make_node("Add", [p + "dot_ub", i_bias], [last]),
    ]
    if y_range:
        nodes += [
            helper.make_node("Sigmoid", [p + "raw"], [p + "sigmoid"]),
            helper.make_node("Mul", [p + "sigmoid", "rating.scale"], [p + "scaled"]),
            helper.make_node("Add", [p + "scaled", "rating.low"], [out]),
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
    if external:
        try:
            data_path(path).name.encode("utf-8")
        except UnicodeEncodeError:
            raise OutputError(f"the external data file name {os.fsencode(data_path(path).name)!r} is not UTF-8, "
                              "which an ONNX location must be; choose another DST name", path=str(path)) from None
    counter = ProgressCounter(sum(t.rows for t in model.tables.values()), progress)
    shapes = {name: ([t.rows, t.dim] if part == "weight" else [t.rows]) for name, t, part in big}
    if external:
        try:
            data_path(path).name.encode("utf-8")
        except UnicodeEncodeError:
            raise OutputError("ONNX external data needs a file name that is valid UTF-8 (the model stores the data "
                              "file's name as text): choose another DST", path=str(path)) from None
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
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:  # the checker takes UTF-8 paths only: check the model read by Python
            with open(path, "rb") as f:
                proto = onnx.load_model(f, load_external_data=False)
            if any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer):
                raise OutputError("ONNX external data needs a file name that is valid UTF-8 (the model stores "
                                  "the data file's name as text): choose another DST", path=str(path)) from None
            onnx.checker.check_model(proto, full_check=True)
        else:
            onnx.checker.check_model(str(path), full_check=True)
    except OutputError:
        raise
    except Exception as e:  # noqa: BLE001 - the checker raises several types
        if _out_of_memory(e):  # the checker parses an inline model whole: a memory limit, not a bad model
            raise OutputError("not enough memory to build an inline ONNX model; use --external-data (onnx.checker "
                              "parses an inline model whole, at about 2.6 times its size)", path=str(path)) from e
        raise OutputError(f"onnx.checker rejects the written model: {e}", path=str(path)) from e


def _out_of_memory(e: BaseException) -> bool:
    """True for a memory failure: Python's MemoryError, or a C++ std::bad_alloc that onnx or
    protobuf re-raised as another type."""
    return isinstance(e, MemoryError) or "bad_alloc" in str(e) or "bad alloc" in str(e).lower()


def _initializer_array(tp: TensorProto, path: Path) -> np.ndarray:
    """An initializer's values (external data memory-mapped); a damaged one is
    UnreadableInputError naming the tensor."""
    try:
        return _initializer_values(tp, path)
    except (MemoryError, OSError) as e:
        if isinstance(e, MemoryError) or e.errno == errno.ENOMEM:
            raise ResourceLimitError(f"tensor {tp.name!r}: not enough memory to read it", path=str(path)) from e
        raise UnreadableInputError(f"tensor {tp.name!r}: {e}", path=str(path)) from e
    except (KeyError, ValueError, TypeError) as e:  # unknown type, short data
        raise UnreadableInputError(f"tensor {tp.name!r}: {e}", path=str(path)) from e


_DECIMAL = re.compile(r"[0-9]{1,19}")


def _external_fields(tp: TensorProto, path: Path) -> tuple[str, int, int | None]:
    """``location``, ``offset`` and ``length`` of an external tensor, checked as the reference
    loaders check them (spec §8): a relative path without ``..`` (or ``.``, empty or absolute
    parts) and decimal, non-negative integers."""
    def bad(what: str) -> UnreadableInputError:
        return UnreadableInputError(f"tensor {tp.name!r}: external data {what}", path=str(path))

    info: dict[str, str] = {}
    for e in tp.external_data:
        if e.key in info:
            raise bad(f"lists {e.key!r} twice")
        info[e.key] = e.value
    loc = info.get("location", "")
    parts = loc.split("/")
    if not loc or "\\" in loc or "\0" in loc or os.path.isabs(loc) or any(p in ("", ".", "..") for p in parts):
        raise bad(f"location {loc[:200]!r} is not a plain relative path inside the model's folder")
    numbers: dict[str, int] = {}
    for key in ("offset", "length"):
        if key in info:
            if not _DECIMAL.fullmatch(info[key]):
                raise bad(f"{key} {info[key][:40]!r} is not a non-negative integer")
            numbers[key] = int(info[key])
    return loc, numbers.get("offset", 0), numbers.get("length")


def _open_external(path: Path, loc: str, name: str) -> int:
    """A read-only descriptor of the external data file ``loc`` of the model ``path``, each part
    opened relative to the previous one without following a symlink (``O_NOFOLLOW``), and
    without blocking (``O_NONBLOCK``: a FIFO is refused instead of waiting for a writer). Only a
    regular file with one link is a data file."""
    def bad(what: str) -> UnreadableInputError:
        return UnreadableInputError(f"tensor {name!r}: external data {loc[:200]!r} {what}", path=str(path))

    nofollow = getattr(os, "O_NOFOLLOW", 0)
    flags = os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | \
        getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    parts = loc.split("/")
    folder = path.parent
    if not (os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd and nofollow):  # no openat: lstat each part
        full = folder
        for p in parts:
            full = full / p
            try:
                st = os.lstat(full)
            except OSError as e:
                raise bad(f"cannot be opened: {e.strerror}") from e
            if stat.S_ISLNK(st.st_mode):
                raise bad("is a symbolic link (refused)")
        fd = os.open(full, flags)
    else:
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise bad(f"cannot be opened: {e.strerror}") from e
        try:
            for i, p in enumerate(parts):
                last = i == len(parts) - 1
                try:
                    st = os.lstat(p, dir_fd=fd)
                    if stat.S_ISLNK(st.st_mode):
                        raise bad("is a symbolic link (refused)" if last else f"goes through a symbolic link {p!r} (refused)")
                    if last and not stat.S_ISREG(st.st_mode):
                        raise bad("is not a regular file (refused)")
                    nxt = os.open(p, flags | (0 if last else getattr(os, "O_DIRECTORY", 0)), dir_fd=fd)
                except OSError as e:
                    if e.errno == errno.ELOOP:
                        raise bad("is a symbolic link (refused)") from e
                    raise bad(f"cannot be opened: {e.strerror}") from e
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file (refused)"
    elif st.st_nlink > 1:
        problem = f"has {st.st_nlink} hard links (refused: a data file has one)"
    if problem is not None:
        os.close(fd)
        raise bad(problem)
    return fd


def _initializer_values(tp: TensorProto, path: Path) -> np.ndarray:
    if tp.data_location == TensorProto.EXTERNAL:
        loc, offset, length = _external_fields(tp, path)
        dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tp.data_type)).newbyteorder("<")
        shape = tuple(tp.dims)
        if any(d < 0 for d in shape):
            raise UnreadableInputError(f"tensor {tp.name!r}: negative dimension in {list(shape)}", path=str(path))
        nbytes = math.prod(shape) * dt.itemsize
        if length is not None and length != nbytes:
            raise UnreadableInputError(f"tensor {tp.name!r}: external data length {length} but its shape "
                                       f"{list(shape)} needs {nbytes} bytes", path=str(path))
        fd = _open_external(path, loc, tp.name)
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset + nbytes > size:
                raise UnreadableInputError(f"tensor {tp.name!r}: external data {loc!r} holds {size} bytes, fewer "
                                           f"than offset {offset} + {nbytes}", path=str(path))
            if nbytes == 0:
                return np.zeros(shape, dtype=dt)
            return np.memmap(f, dtype=dt, mode="r", offset=offset, shape=shape)  # the map outlives the file
    return numpy_helper.to_array(tp)


def _tensor_shape(tp: TensorProto, rank: int, what: str, path: Path) -> None:
    if len(tp.dims) != rank:
        raise UnreadableInputError(f"tensor {tp.name!r}: {what} must have {rank} dimension(s), it has "
                                   f"{len(tp.dims)} ({list(tp.dims)})", path=str(path))
    if tp.data_type not in _ONNX_FLOAT.values():
        raise UnreadableInputError(f"tensor {tp.name!r}: element type {tp.data_type} is not a float type",
                                   path=str(path))


def read(path: Path) -> EmbeddingModel:
    """Read an embconv ONNX model back into the IR (layout 2, and layout 1 whose inputs were
    also initializers: those are not tables and are not read)."""
    try:
        m = onnx.load(str(path), load_external_data=False)
    except MemoryError as e:
        raise ResourceLimitError("not enough memory to load this inline ONNX model (an ONNX file is parsed "
                                 "whole; models written with --external-data need little)", path=str(path)) from e
    except Exception as e:  # noqa: BLE001 - protobuf decode errors have several types
        if _out_of_memory(e):
            raise ResourceLimitError("not enough memory to load this inline ONNX model (an ONNX file is parsed "
                                     "whole; models written with --external-data need little)",
                                     path=str(path)) from e
        raise UnreadableInputError(f"not a readable ONNX model: {e}", path=str(path)) from e
    try:
        props = {p.key: p.value for p in m.metadata_props}
        if "embconv.manifest" not in props:
            raise UnreadableInputError("ONNX model has no embconv.manifest in metadata_props", path=str(path))
        layout = props.get("embconv.layout", "1")
        if layout not in READ_LAYOUTS:
            raise UnreadableInputError(f"embconv.layout {layout[:20]!r} is not one this embconv reads "
                                       f"({', '.join(READ_LAYOUTS)})", path=str(path))
        manifest = json.loads(props["embconv.manifest"])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
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
        _tensor_shape(inits[f"{name}.weight"], 2, "a weight", path)
        w = _initializer_array(inits[f"{name}.weight"], path)
        b = None
        if f"{name}.bias" in inits:
            _tensor_shape(inits[f"{name}.bias"], 1, "a bias", path)
            b = _initializer_array(inits[f"{name}.bias"], path)
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
