"""One name -> implementation table per kind of component, and one ``build``.

A config says ``{"name": "tanh"}`` or ``{"name": "adam", "lr": 0.01}``; ``build`` turns
that plain mapping into an object. Every registered class keeps each constructor
argument as an attribute of the same name, so ``obj.hparams()`` gives back a spec that
``build`` accepts again (the round trip a test checks). Runtime values that are not
hyperparameters (``rng``, input shapes) are passed to ``build`` as keyword arguments and
never written back into the spec.

The names here are the stems of the YAML files under ``conf/``; renaming a class never
changes them, so old runs keep reproducing.

This module imports no component: each component module imports it and registers
itself, and ``nets.catalog`` is the one module that imports every kind (so the tables
are full) and offers ``build(kind, spec)``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import Any, Callable, Mapping

import numpy as np

from nets.text import one_line, show


class ConfigError(ValueError):
    """A user-facing configuration mistake, reported as one line.

    Parameters
    ----------
    key : str
        Dotted config key the mistake is about (``optimizer.lr``).
    value : Any
        The offending value.
    allowed : str
        What is allowed, in words (``"one of: adam, sgd"`` or ``"> 0"``).
    why : str, optional
        Extra explanation (why a combination makes no sense).
    """

    def __init__(self, key: str, value: Any, allowed: str, why: str = ""):
        self.key, self.value, self.allowed, self.why = key, value, allowed, why
        # The value is the user's: cut and escaped, so a huge or hostile value
        # cannot flood or repaint the terminal.
        msg = f"{key}={show(value)} is not valid: {allowed}" if key else allowed
        if why:
            msg += f" ({why})"
        super().__init__(one_line(msg))


def suggest(word: str, choices) -> str:
    """``"; did you mean 'tanh'?"`` when a close choice exists, else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@functools.lru_cache(maxsize=None)
def _signature(cls: type) -> tuple[tuple[str, ...], frozenset]:
    """``(hyperparameter names, the required ones)`` of a component class, once per
    class: ``inspect.signature`` was most of building a model, and a sweep's launcher
    builds every point's (200 points asked it 11,000 times)."""
    sig = inspect.signature(cls.__init__)
    names = tuple(p for p in list(sig.parameters)[1:]
                  if sig.parameters[p].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                    inspect.Parameter.VAR_POSITIONAL)
                  and p not in getattr(cls, "runtime_args", ()))
    return names, frozenset(p for p in names
                            if sig.parameters[p].default is inspect.Parameter.empty)


class Component:
    """Base of every registered component.

    Subclasses set ``name`` (their registry key, via ``Registry.register``) and store
    every ``__init__`` argument as an attribute of the same name; ``hparams`` relies on it.
    """

    name: str = ""

    @classmethod
    def hparam_names(cls) -> list[str]:
        return list(_signature(cls)[0])

    def hparams(self) -> dict[str, Any]:
        """The spec that rebuilds this component: ``{"name": ..., **hyperparameters}``."""
        out: dict[str, Any] = {"name": self.name}
        for p in self.hparam_names():
            v = getattr(self, p)
            out[p] = v.hparams() if isinstance(v, Component) else v
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items() if k != "name")
        return f"{self.name}({args})"


class Registry:
    """A name -> class table for one kind of component.

    Parameters
    ----------
    kind : str
        The kind (``"activation"``), used in error messages and as the config group name.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._table: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            if name in self._table:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            cls.name = name
            self._table[name] = cls
            return cls
        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin module being reloaded registers it again)."""
        self._table.pop(name, None)

    def classes(self) -> dict[str, type]:
        """A copy of the name -> class table."""
        return dict(self._table)

    def names(self) -> list[str]:
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def __getitem__(self, name: str) -> type:
        return self.get(name)

    def get(self, name: str, key: str | None = None) -> type:
        """The class registered as ``name``; an import path ``package.module:Class``
        imports the user's class instead (``nets.plugins.resolve``)."""
        if name not in self._table and isinstance(name, str) and ":" in name:
            from nets import plugins  # lazily: plugins imports the component modules

            return plugins.resolve(self.kind, name, key or self.kind)
        if name not in self._table:
            raise ConfigError(key or self.kind, name,
                              f"unknown {self.kind}; choose one of: {', '.join(self.names())} "
                              "or an import path package.module:Class"
                              + suggest(name, self.names()))
        return self._table[name]

    def build(self, spec: str | Mapping[str, Any] | Component, key: str | None = None,
              **runtime: Any) -> Any:
        """Build a component from ``"name"`` or ``{"name": ..., **hparams}``.

        Parameters
        ----------
        spec : str or mapping or Component
            The plain spec. A component passes through unchanged.
        key : str, optional
            Dotted config key for error messages (defaults to the kind).
        **runtime
            Runtime values (``rng``, shapes) the class declares in ``runtime_args``.

        Raises
        ------
        ConfigError
            Unknown name or unknown hyperparameter, naming the valid choices.
        """
        key = key or self.kind
        if isinstance(spec, Component):
            return spec
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError(key, spec, f"a {self.kind} spec needs a 'name'; "
                              f"choose one of: {', '.join(self.names())}")
        spec = dict(spec)
        cls = self.get(spec.pop("name"), f"{key}.name")
        allowed = cls.hparam_names()
        for k in spec:
            if k not in allowed:
                raise ConfigError(f"{key}.{k}", spec[k],
                                  f"unknown parameter of {self.kind} {cls.name!r}; "
                                  f"valid: {', '.join(allowed) or '(none)'}" + suggest(k, allowed))
        required = _signature(cls)[1]
        for p in allowed:
            if p in required and p not in spec:
                raise ConfigError(f"{key}.{p}", None, f"{self.kind} {cls.name!r} requires it")
        wanted = set(getattr(cls, "runtime_args", ()))
        kwargs = {**spec, **{k: v for k, v in runtime.items() if k in wanted}}
        try:
            obj = cls(**kwargs)
        except ConfigError as e:
            if e.key and not e.key.startswith(key):
                e.key = f"{key}.{e.key}"
                e.args = (str(ConfigError(e.key, e.value, e.allowed, e.why)),)
            raise
        except Exception as e:  # noqa: BLE001 - a user's constructor failing is one line
            if not getattr(cls, "user_path", None):
                raise
            line = (str(e).strip().splitlines() or [""])[0]
            raise ConfigError(f"{key}.name", cls.name, f"{cls.__name__}({', '.join(map(str, spec))}) "
                              f"raised {type(e).__name__}: {line}") from None
        if getattr(cls, "user_path", None):
            from nets import plugins

            plugins.finish(self.kind, obj, key)
        return obj


REGISTRIES: dict[str, Registry] = {}


def registry(kind: str) -> Registry:
    """The registry of ``kind``, created on first use (one per kind, process-wide)."""
    if kind not in REGISTRIES:
        REGISTRIES[kind] = Registry(kind)
    return REGISTRIES[kind]


def is_int(v: Any, low: int | None = None, integral_floats: bool = False) -> bool:
    """An integer (numpy's too), never a bool; ``>= low`` when given.

    YAML and the command line turn ``true`` into a bool, which Python counts as an int:
    types are checked here, not assumed. ``integral_floats`` also accepts ``3.0`` (data
    files and JSON give whole numbers as floats).
    """
    if isinstance(v, (bool, np.bool_)):
        return False
    ok = isinstance(v, (int, np.integer)) or (
        integral_floats and isinstance(v, (float, np.floating)) and float(v).is_integer())
    return ok and (low is None or v >= low)


def is_number(v: Any) -> bool:
    """A real number (numpy's too), never a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def check(cond: bool, key: str, value: Any, allowed: str, why: str = "") -> None:
    """Raise ``ConfigError(key, value, allowed)`` unless ``cond``."""
    if not cond:
        raise ConfigError(key, value, allowed, why)
