"""Inert stand-ins for everything a pickle names that embconv does not reconstruct.

A stub records what the pickle asked for (module, name, arguments, state) and does nothing
else: no ``__reduce__``, no ``__setstate__`` side effects, no ``__getattr__``, no ``__del__``,
identity equality and hashing. Stubs are never called, re-pickled or imported later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class GlobalStub:
    """A global the pickle names (a class or a function). ``impl``, when set, is embconv's own
    reconstructor for it; otherwise calling it in the pickle yields an ``ObjectStub``."""

    __slots__ = ("module", "name", "impl", "new_impl", "__weakref__")

    def __init__(self, module: str, name: str, impl: Callable[..., Any] | None = None,
                 new_impl: Callable[..., Any] | None = None) -> None:
        self.module = module
        self.name = name
        self.impl = impl
        self.new_impl = new_impl

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def reconstructed(self) -> bool:
        return self.impl is not None or self.new_impl is not None

    def __repr__(self) -> str:
        return f"<global {self.qualname}>"


class AttrStub:
    """``getattr(owner, name)``: an attribute of a stubbed class or object, or (issue 11) a bound
    method of plain data the pickle rebuilt itself (``owner`` is then e.g. a real numpy array).
    Only a record: the attribute is never looked up, and calling the stub in the pickle yields
    another stub."""

    __slots__ = ("owner", "name", "__weakref__")

    def __init__(self, owner: object, name: str) -> None:
        self.owner = owner
        self.name = name

    @property
    def qualname(self) -> str:
        return chain_name(self)

    def __repr__(self) -> str:
        return f"<attribute {self.qualname}>"


class ObjectStub:
    """An instance of a stubbed class: constructor arguments, BUILD state, and any items or
    list items the pickle added to it."""

    __slots__ = ("cls", "args", "kwargs", "state", "dictitems", "listitems", "__weakref__")

    def __init__(self, cls: GlobalStub | AttrStub | ObjectStub, args: tuple = (),
                 kwargs: dict | None = None) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = kwargs or {}
        self.state: Any = None
        self.dictitems: dict | None = None
        self.listitems: list | None = None

    @property
    def class_name(self) -> str:
        return chain_name(self.cls)

    @property
    def qualname(self) -> str:
        """Used when this stub is itself called: ``module.func()``."""
        return chain_name(self)

    @property
    def attrs(self) -> dict:
        """The instance ``__dict__`` the object would have had (BUILD state, slot state merged)."""
        state = self.state
        if isinstance(state, dict):
            return state
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return {}

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def __repr__(self) -> str:
        return f"<{self.class_name} object (stub)>"


def stub_class_name(obj: object) -> str:
    """The dotted class name of a stub or, for anything else, its Python type name."""
    if isinstance(obj, ObjectStub):
        return obj.class_name
    if isinstance(obj, (GlobalStub, AttrStub)):
        return obj.qualname
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


MAX_NAME_CHAIN = 64


def chain_name(obj: object) -> str:
    """The dotted name of a stub reached through attributes and calls (``mod.f().attr``),
    built iteratively: a pickle can chain stubs a million deep, and a recursive name would
    exhaust the stack. Past ``MAX_NAME_CHAIN`` links the root is elided (``….x()``)."""
    parts: list[str] = []
    node = obj
    while len(parts) <= MAX_NAME_CHAIN:
        if isinstance(node, AttrStub):
            parts.append(f".{node.name}")
            node = node.owner
        elif isinstance(node, ObjectStub):
            parts.append("()")
            node = node.cls
        else:
            head = node.qualname if isinstance(node, GlobalStub) else stub_class_name(node)
            return head + "".join(reversed(parts))
    return "…" + "".join(reversed(parts))
