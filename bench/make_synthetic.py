"""Generate a synthetic fastai-shaped collab file (``learn.save`` layout) of a given size.

``{'model': OrderedDict(u_weight.weight [N,128], i_weight.weight [M,128], u_bias.weight [N,1],
i_bias.weight [M,1]), 'opt': {...}}`` written with torch.save in the zip container (torch >= 1.6)
or the legacy container (``_use_new_zipfile_serialization=False``), plus one-token-a-line
vocabulary sidecars (``#na#`` first, as fastai's collab vocabularies have it) for
``--vocab user=… --vocab item=…``. torch is a bench dependency, not a runtime one."""

from __future__ import annotations

import argparse
import os
from collections import OrderedDict

DIM = 128


def parse_size(text: str) -> int:
    units = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
    t = text.strip().upper()
    num = t.rstrip("KMGIB")
    return int(float(num) * units[t[len(num):]])


def rows_for(size: int, dim: int = DIM) -> int:
    """Rows per table so that the two weight tables hold ``size`` bytes of float32."""
    return max(2, size // (2 * dim * 4))


def write_vocab(path: str, prefix: str, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("#na#\n")
        step = 1 << 16
        for s in range(1, n, step):
            f.write("".join(f"{prefix}{i}\n" for i in range(s, min(n, s + step))))


def generate(folder: str, size: int, container: str, seed: int = 0) -> dict:
    import torch

    n_users = rows_for(size)
    n_items = n_users
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    sd["u_weight.weight"] = torch.randn(n_users, DIM, generator=g) * 0.05
    sd["i_weight.weight"] = torch.randn(n_items, DIM, generator=g) * 0.05
    sd["u_bias.weight"] = torch.randn(n_users, 1, generator=g) * 0.01
    sd["i_bias.weight"] = torch.randn(n_items, 1, generator=g) * 0.01
    opt = {"state": {}, "param_groups": [{"lr": 0.005, "wd": 0.1, "params": [0, 1, 2, 3]}]}
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"collab-{container}.pth")
    torch.save({"model": sd, "opt": opt}, path, _use_new_zipfile_serialization=(container == "zip"))
    users = os.path.join(folder, "users.txt")
    items = os.path.join(folder, "items.txt")
    if not os.path.exists(users):
        write_vocab(users, "u", n_users)
        write_vocab(items, "i", n_items)
    return {"path": path, "users": users, "items": items, "rows": n_users, "dim": DIM,
            "weight_bytes": 2 * n_users * DIM * 4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="64MiB", help="bytes of weights (both tables), e.g. 1GiB")
    ap.add_argument("--container", choices=["zip", "legacy"], default="zip")
    ap.add_argument("--out", default="bench-data")
    a = ap.parse_args()
    info = generate(a.out, parse_size(a.size), a.container)
    print(info)


if __name__ == "__main__":
    main()
