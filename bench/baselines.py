"""The usual tools, for comparison (run under /usr/bin/time -v by bench_convert.py).

``torch-safetensors SRC DST``: torch.load + safetensors.torch.save_file (what most people do).
``gensim SRC DST USERS ITEMS``: torch.load, then per table gensim KeyedVectors +
save_word2vec_format (text), to ``DST.user.vec`` / ``DST.item.vec`` like embconv names them.
``onnx-keys DST USERS ITEMS``: what the onnx library itself needs for the vocabularies: a
model holding just the two LabelEncoders (every key, built the ordinary onnx.helper way), saved,
loaded back and checked (``onnx.checker`` full check), no weights.
Prints the seconds spent inside the writer alone as ``writer_seconds=…`` on stderr."""

from __future__ import annotations

import sys
import time


def _state_dict(src: str) -> dict:
    import torch

    obj = torch.load(src, map_location="cpu", weights_only=True)
    return obj["model"] if "model" in obj else obj


def torch_safetensors(src: str, dst: str) -> None:
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in _state_dict(src).items()}
    t0 = time.perf_counter()
    save_file(sd, dst, metadata={"format": "pt"})
    print(f"writer_seconds={time.perf_counter() - t0:.3f}", file=sys.stderr)


def _tokens(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def gensim_text(src: str, dst: str, users: str, items: str) -> None:
    import numpy as np
    from gensim.models import KeyedVectors

    sd = _state_dict(src)
    spent = 0.0
    for name, key, vocab in (("user", "u_weight.weight", users), ("item", "i_weight.weight", items)):
        w = sd[key].numpy()
        kv = KeyedVectors(w.shape[1], count=0, dtype=np.float32)
        kv.add_vectors(_tokens(vocab), w)
        t0 = time.perf_counter()
        kv.save_word2vec_format(f"{dst}.{name}.vec", binary=False)
        spent += time.perf_counter() - t0
        del kv, w
    print(f"writer_seconds={spent:.3f}", file=sys.stderr)


def onnx_keys(dst: str, users: str, items: str) -> None:
    import onnx
    from onnx import TensorProto, helper

    nodes, inputs, outputs = [], [], []
    for name, vocab in (("user", users), ("item", items)):
        keys = _tokens(vocab)
        inputs.append(helper.make_tensor_value_info(f"{name}.id", TensorProto.STRING, ["M"]))
        outputs.append(helper.make_tensor_value_info(f"{name}.row", TensorProto.INT64, ["M"]))
        nodes.append(helper.make_node("LabelEncoder", [f"{name}.id"], [f"{name}.row"], domain="ai.onnx.ml",
                                      keys_strings=keys, values_int64s=list(range(len(keys))), default_int64=0))
        del keys
    graph = helper.make_graph(nodes, "keys", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 2)],
                              ir_version=8)
    del graph, nodes
    t0 = time.perf_counter()
    onnx.save_model(model, dst)
    del model
    onnx.checker.check_model(dst, full_check=True)
    back = onnx.load(dst)
    assert len(back.graph.node) == 2
    print(f"writer_seconds={time.perf_counter() - t0:.3f}", file=sys.stderr)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"torch-safetensors": torch_safetensors, "gensim": gensim_text, "onnx-keys": onnx_keys}[mode](*args)
