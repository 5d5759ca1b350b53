"""fastai's TabularModel run forward in numpy (eval mode), from a file's state dict — only to check
rebuilt labels against the data (``ratings_check``), never to serve predictions.

fastai 1 and 2 share the shape (spec fastai-formats §4.5, §5.5; EmbeddingNN is a TabularModel with
no continuous inputs): ``embeds.N`` looked up and concatenated (embedding dropout is the identity
in eval mode), ``bn_cont`` over the continuous inputs, then ``layers``: Linear and BatchNorm1d
modules in index order (v1 ``layers.N``, v2 ``layers.N.M``) with a ReLU after every Linear but the
last; dropout is the identity. The output is the raw score: ``y_range``'s sigmoid is left out
(it is monotone, and ``learn.save`` files do not store it)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import EmbeddingModel, EmbeddingTable

_LAYER = re.compile(r"layers\.(\d+)(?:\.(\d+))?\.(weight|bias|running_mean|running_var)$")
BN_EPS = 1e-5  # torch's BatchNorm1d default, which fastai never changes


@dataclass
class _Module:
    kind: str  # "linear" | "batchnorm"
    params: dict[str, np.ndarray]


@dataclass
class TabularForward:
    """The parts of a TabularModel the forward pass needs (embedding tables come from the IR)."""

    layers: list[_Module]
    bn_cont: dict[str, np.ndarray] | None

    def __call__(self, embedded: np.ndarray, cont: np.ndarray | None = None) -> np.ndarray:
        """Outputs (n, out) for ``embedded`` (n, sum of dims: the tables' rows concatenated) and the
        normalised continuous inputs ``cont`` (n, n_cont)."""
        x = embedded.astype(np.float32, copy=False)
        if self.bn_cont is not None and cont is not None and cont.shape[1]:
            x = np.concatenate([x, _batchnorm(cont.astype(np.float32), self.bn_cont)], axis=1)
        linears = [k for k, m in enumerate(self.layers) if m.kind == "linear"]
        for k, m in enumerate(self.layers):
            if m.kind == "linear":
                x = x @ m.params["weight"].T
                if "bias" in m.params:
                    x = x + m.params["bias"]
                if k != linears[-1]:
                    x = np.maximum(x, 0)
            else:
                x = _batchnorm(x, m.params)
        return x


def _batchnorm(x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    y = (x - p["running_mean"]) / np.sqrt(p["running_var"] + BN_EPS)
    if "weight" in p:
        y = y * p["weight"]
    if "bias" in p:
        y = y + p["bias"]
    return y


def tabular_forward(model: EmbeddingModel, tables: Sequence[EmbeddingTable]) -> TabularForward | None:
    """The forward pass of the TabularModel whose embeddings are ``tables``, read from the file the
    model came from; None when the file's layers are not that shape."""
    mf = getattr(model, "_file", None)
    if mf is None or not tables:
        return None
    first = tables[0].weight_key
    prefix = None
    tensors: dict[str, Any] = {}
    for path, ref in mf.tensors():
        tensors[path] = ref
        if prefix is None and path.endswith(first) and (path == first or path.endswith("." + first)):
            prefix = path[: len(path) - len(first)]
    if prefix is None:
        return None
    grouped: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    bn_cont: dict[str, np.ndarray] = {}
    for path, ref in tensors.items():
        if not path.startswith(prefix):
            continue
        key = path[len(prefix):]
        m = _LAYER.fullmatch(key)
        if m:
            grouped.setdefault((int(m.group(1)), int(m.group(2) or 0)), {})[m.group(3)] = _array(ref)
        elif key.startswith("bn_cont.") and key.split(".", 1)[1] in ("weight", "bias", "running_mean", "running_var"):
            bn_cont[key.split(".", 1)[1]] = _array(ref)
    layers = []
    for _, params in sorted(grouped.items()):
        if "running_mean" in params and "running_var" in params:
            layers.append(_Module("batchnorm", params))
        elif "weight" in params and params["weight"].ndim == 2:
            layers.append(_Module("linear", params))
        else:
            return None
    if not any(m.kind == "linear" for m in layers):
        return None
    return TabularForward(layers, bn_cont if "running_mean" in bn_cont else None)


def _array(ref: Any) -> np.ndarray:
    return np.asarray(ref.to_numpy(), dtype=np.float32)
