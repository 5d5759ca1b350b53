"""Walking an object graph made by the restricted unpickler.

Paths follow what users know: dict keys joined by ``.`` (``model.u_weight.weight`` for a state
dict under ``model``), and for pickled ``nn.Module`` stubs the same names ``state_dict()`` gives
(parameters, then persistent buffers, then children in order). The walk is iterative (deep
graphs cannot exhaust Python's stack), bounded in depth, and safe on cycles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ResourceLimitError
from .globals import PendingTensor
from .stubs import AttrStub, GlobalStub, ObjectStub
from .tensors import TensorRef

MAX_DEPTH = 500
# Containers (not leaves) one walk may visit. Inside pickled modules shared submodules are
# walked once per path (as state_dict() does), so a DAG of modules a few KB long has 2**40 paths.
MAX_VISITS = 500_000


def module_attrs(obj: Any) -> dict | None:
    """The instance dict of a pickled ``nn.Module`` stub, or None if ``obj`` is not one."""
    if isinstance(obj, ObjectStub):
        attrs = obj.attrs
        if "_modules" in attrs and "_parameters" in attrs:
            return attrs
    return None


def as_tensor(obj: Any) -> TensorRef | None:
    if isinstance(obj, TensorRef):
        return obj
    if isinstance(obj, PendingTensor):
        return obj.tensor
    return None


def _children(obj: Any) -> list[tuple[str, Any]]:
    """(name, child) pairs of one node, in a stable order."""
    mod = module_attrs(obj)
    if mod is not None:
        out: list[tuple[str, Any]] = []
        params = mod.get("_parameters")
        if isinstance(params, dict):
            out.extend((str(k), v) for k, v in params.items() if v is not None)
        buffers = mod.get("_buffers")
        non_persistent = mod.get("_non_persistent_buffers_set") or set()
        if isinstance(buffers, dict):
            out.extend((str(k), v) for k, v in buffers.items()
                       if v is not None and (not isinstance(non_persistent, (set, frozenset)) or k not in non_persistent))
        modules = mod.get("_modules")
        if isinstance(modules, dict):
            out.extend((str(k), v) for k, v in modules.items() if v is not None)
        return out
    # Plain values are leaves: left out here, a million-token vocabulary costs no walk.
    if isinstance(obj, dict):
        return [(_key(k), v) for k, v in obj.items() if type(v) not in _PLAIN]
    if isinstance(obj, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(obj) if type(v) not in _PLAIN]
    if isinstance(obj, ObjectStub):
        out = [(str(k), v) for k, v in obj.attrs.items()]
        if obj.dictitems:
            out.extend((_key(k), v) for k, v in obj.dictitems.items())
        if obj.listitems:
            out.extend((str(i), v) for i, v in enumerate(obj.listitems) if type(v) not in _PLAIN)
        if not out and obj.args:
            out = [(f"arg{i}", v) for i, v in enumerate(obj.args)]
        return out
    return []


def _key(k: Any) -> str:
    if isinstance(k, (GlobalStub, AttrStub)):
        return k.qualname
    if isinstance(k, ObjectStub):
        return k.class_name
    return str(k)


_LEAF = (str, bytes, int, float, bool, type(None), np.ndarray, np.generic, GlobalStub, AttrStub)
_PLAIN = frozenset({str, bytes, int, float, bool, type(None)})


def iter_tensors(root: Any) -> Iterator[tuple[str, TensorRef]]:
    """Every tensor reachable from ``root`` with its dotted path, depth first, in file order.

    Inside pickled modules every path is reported (a tied weight appears under each name, as
    ``state_dict()`` would list it); elsewhere each container is visited once."""
    seen: set[int] = set()
    # stack of (path, obj, depth, ancestors-inside-module-walk)
    stack: list[tuple[str, Any, int, frozenset]] = [("", root, 0, frozenset())]
    visits = 0
    while stack:
        path, obj, depth, ancestors = stack.pop()
        t = as_tensor(obj)
        if t is not None:
            yield path, t
            continue
        if isinstance(obj, _LEAF):
            continue
        visits += 1
        if visits > MAX_VISITS:
            raise ResourceLimitError(
                f"object graph expands to more than {MAX_VISITS:,} containers when walked (limit)")
        if depth > MAX_DEPTH:
            raise ResourceLimitError(f"object graph nests deeper than {MAX_DEPTH} levels (limit)")
        oid = id(obj)
        in_module = module_attrs(obj) is not None
        if in_module:
            if oid in ancestors:
                continue
            ancestors = ancestors | {oid}
        else:
            if oid in seen:
                continue
            seen.add(oid)
        children = _children(obj)
        for name, child in reversed(children):
            stack.append((f"{path}.{name}" if path else name, child, depth + 1, ancestors))


def describe(obj: Any) -> str:
    """A short human description of an object's type."""
    if isinstance(obj, ObjectStub):
        return f"{obj.class_name} (pickled object)"
    if isinstance(obj, (GlobalStub, AttrStub)):
        return f"reference to {obj.qualname}"
    if as_tensor(obj) is not None:
        return "tensor"
    if isinstance(obj, dict):
        kind = type(obj).__name__
        return f"{kind} with {len(obj)} keys"
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__} of {len(obj)} items"
    return type(obj).__name__
