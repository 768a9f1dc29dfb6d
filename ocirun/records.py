"""Typed records without dataclasses.

``dataclasses`` imports ``inspect`` (and with it ast, dis, tokenize, enum, re):
≈16 ms here, more than a whole `runc state`.  The parsed spec is built on every
`create` and in every init stage, so its records use this small base instead:
fields come from the class annotations, defaults from class attributes, and a
mutable default is written ``factory(list)``.  Records compare and print by
value, like dataclasses.
"""
from __future__ import annotations


class factory:
    """Default made fresh for every instance (``field(default_factory=...)``)."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


_MISSING = object()


class Record:
    _fields: tuple = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        fields = []
        defaults = {}
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):
                if name.startswith("_"):
                    continue
                if name not in fields:
                    fields.append(name)
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        cls._fields = tuple(fields)
        cls._defaults = defaults

    def __init__(self, *args, **kwargs):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__}: too many arguments")
        for name, value in zip(self._fields, args):
            kwargs[name] = value
        for name in self._fields:
            value = kwargs.pop(name, _MISSING)
            if value is _MISSING:
                default = self._defaults.get(name, _MISSING)
                if default is _MISSING:
                    raise TypeError(f"{type(self).__name__}: missing field {name!r}")
                value = default.make() if isinstance(default, factory) else default
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unknown fields {', '.join(kwargs)}")

    def __eq__(self, other):
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __repr__(self):
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self._fields}
