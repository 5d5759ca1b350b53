"""The usual tools, for comparison (run under /usr/bin/time -v by bench_convert.py).

``torch-safetensors SRC DST``: torch.load + safetensors.torch.save_file (what most people do).
``gensim SRC DST USERS ITEMS``: torch.load, then per table gensim KeyedVectors +
save_word2vec_format (text), to ``DST.user.vec`` / ``DST.item.vec`` like embconv names them.
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


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"torch-safetensors": torch_safetensors, "gensim": gensim_text}[mode](*args)
