"""Generic helpers over the restricted unpickler's object graph (no fastai knowledge here)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..pickle import ObjectStub, TensorRef, iter_tensors, module_attrs
from ..pickle.walk import as_tensor

MAX_VISIT = 2_000_000


def class_tail(obj: Any) -> str:
    """The last component of a stub's class name ('' for anything else)."""
    return obj.class_name.rsplit(".", 1)[-1] if isinstance(obj, ObjectStub) else ""


def children(obj: Any) -> Iterator[Any]:
    if isinstance(obj, ObjectStub):
        yield from obj.attrs.values()
        if obj.dictitems:
            yield from obj.dictitems.values()
        if obj.listitems:
            yield from obj.listitems
    elif isinstance(obj, dict):
        yield from obj.values()
    elif isinstance(obj, (list, tuple)):
        yield from obj


def find_stubs(root: Any, tails: Iterable[str], *, skip_modules: bool = True) -> list[ObjectStub]:
    """Stub instances whose class name ends in one of ``tails``, shallowest first (BFS).
    Pickled nn.Modules are not searched inside (their weights are not vocabularies)."""
    wanted = set(tails)
    found: list[ObjectStub] = []
    seen: set[int] = set()
    queue: list[Any] = [root]
    visited = 0
    while queue and visited < MAX_VISIT:
        nxt: list[Any] = []
        for obj in queue:
            if id(obj) in seen or isinstance(obj, (str, bytes, int, float, np.ndarray, TensorRef)):
                continue
            seen.add(id(obj))
            visited += 1
            if class_tail(obj) in wanted:
                found.append(obj)
            if skip_modules and module_attrs(obj) is not None and obj is not root:
                continue
            nxt.extend(children(obj))
        queue = nxt
    return found


def as_list(obj: Any) -> list | None:
    """A Python list from a list/tuple, a numpy array, fastcore's ``L`` or fastai's
    ``CategoryMap`` (both keep their values in ``items``), else None."""
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, np.ndarray):
        if obj.ndim != 1:
            return None
        return [v for v in obj] if obj.dtype != object else obj.tolist()
    if isinstance(obj, ObjectStub):
        items = obj.attrs.get("items")
        if items is None and obj.listitems is not None:
            return list(obj.listitems)
        if items is not None and items is not obj:
            return as_list(items)
    return None


def module_state_dict(module: Any) -> OrderedDict[str, TensorRef]:
    """What ``module.state_dict()`` would return for a pickled module stub."""
    return OrderedDict(iter_tensors(module))


def tensors_of(obj: Any) -> OrderedDict[str, TensorRef]:
    return OrderedDict(iter_tensors(obj))


def named_modules(module: Any, prefix: str = "") -> Iterator[tuple[str, ObjectStub]]:
    """(dotted path, module stub) for a module and all its submodules, depth first."""
    stack = [(prefix, module, 0)]
    seen: set[int] = set()
    while stack:
        path, mod, depth = stack.pop()
        attrs = module_attrs(mod)
        if attrs is None or id(mod) in seen or depth > 200:
            continue
        seen.add(id(mod))
        yield path, mod
        subs = attrs.get("_modules")
        if isinstance(subs, dict):
            for name, sub in reversed(list(subs.items())):
                stack.append((f"{path}.{name}" if path else str(name), sub, depth + 1))


def scalar_value(obj: Any) -> float | None:
    """A Python float from a number, numpy scalar or 0-d/1-element tensor."""
    if isinstance(obj, bool):
        return None
    if isinstance(obj, (int, float)):
        return float(obj)
    if isinstance(obj, np.generic):
        return float(obj.item())
    t = as_tensor(obj)
    if t is not None and t.numel == 1:
        return float(t.to_numpy().reshape(-1)[0])
    return None


def pair_value(obj: Any) -> tuple[float, float] | None:
    """(lo, hi) from a 2-tuple/list of numbers or a 2-element tensor."""
    t = as_tensor(obj)
    if t is not None and t.numel == 2:
        a = t.to_numpy().reshape(-1)
        return (float(a[0]), float(a[1]))
    if isinstance(obj, (list, tuple)) and len(obj) == 2:
        lo, hi = scalar_value(obj[0]), scalar_value(obj[1])
        if lo is not None and hi is not None:
            return (lo, hi)
    return None
