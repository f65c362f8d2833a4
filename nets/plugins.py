"""The user's own components, named by import path (``mylayers:SigmoidDense``).

Wherever a config names a registered component, a name of the form
``package.module:Class`` imports the user's class and uses it like a built-in:
``Registry.get`` and ``Registry.build`` delegate such names to ``resolve`` here. A
``plugins: [module, ...]`` list imports modules whose classes register themselves with
nets' registries (``@LAYERS.register("sigmoid_dense")``); ``load_modules`` does that.

Where modules are found: the launch directory (the current directory, first, as
``python -m`` does), then the Python path. The protocol each kind must follow is in
``docs/components.md``; ``check_protocol`` enforces its method names and arities when
the class is resolved, before anything is recorded, with one line naming what is
missing.

Every module imported this way is remembered with its source file and the SHA-256 of
that file's bytes (``sources``), so a run can store the file and a rerun can refuse a
module whose content changed (``verify``). Nothing here reads an artifact: a recorded
copy is only ever imported after the user puts it on the path.

Engine floor: numpy only, no Hydra, OmegaConf or MLflow.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

from nets.registry import ConfigError

_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# kind -> (module of its base class, base class name, {method: positional args after self}).
# Arities are the ones nets calls with (``Layer.backward(dY)``); defaults may add more.
PROTOCOLS: dict[str, tuple[str, str, dict[str, int]]] = {
    "activation": ("nets.activations", "Activation", {"forward": 1, "backward": 2}),
    "loss": ("nets.losses", "Loss", {"per_sample": 2, "value": 3, "grad": 3}),
    "layer": ("nets.layers", "Layer", {"build": 3, "forward": 2, "backward": 1}),
    "optimizer": ("nets.optimizers", "Optimizer", {"update": 2}),
    "schedule": ("nets.schedules", "Schedule", {"start": 1, "update": 3}),
    "dataset": ("nets.data", "Dataset", {"load": 1}),
    "init": ("nets.initializers", "Initializer", {"__call__": 5}),
    "target": ("nets.targets", "Target", {"encode": 3}),
    "model": ("nets.models", "Sequential", {"forward": 2, "backward": 1, "predict": 1,
                                            "named_params": 0}),
}
# Attributes nets reads from every component of a kind; filled in after construction when
# a class that does not subclass nets' base leaves them out.
DEFAULTS: dict[str, dict[str, Any]] = {
    "activation": {"bounds": None, "rectifier": False},
    "loss": {"fused": None, "outputs": None, "targets": ("one_hot", "plus_minus_one", "raw")},
    "layer": {"params": (), "label": "", "input_grad": True},
    "optimizer": {"weight_decay": 0.0},
    "schedule": {"every": "epoch"},
    "target": {"values": None},
}


@dataclass(frozen=True)
class Source:
    """A user module a run imported: its name, file and content hash."""

    module: str
    file: str      # absolute path at import time
    sha256: str

    @property
    def filename(self) -> str:
        """Path relative to the module's search root: ``mylayers.py``, ``pkg/mod.py``."""
        parts = self.module.split(".")
        p = Path(self.file)
        if p.name == "__init__.py":
            return "/".join(parts) + "/__init__.py"
        return "/".join(parts[:-1] + [p.name])


_SOURCES: dict[str, Source] = {}
_RESOLVED: dict[tuple[str, str], type] = {}


def is_import_path(name: Any) -> bool:
    """``True`` for ``"package.module:Class"`` names."""
    return isinstance(name, str) and bool(_IMPORT_PATH.match(name))


def file_hash(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _ensure_launch_dir() -> None:
    # Console scripts start with their bin directory as sys.path[0], not the current
    # directory: put the launch directory first so ``mylayers`` next to the user's
    # config is found before anything installed under the same name.
    cwd = os.getcwd()
    if not sys.path or sys.path[0] != cwd:
        if cwd in sys.path:
            sys.path.remove(cwd)
        sys.path.insert(0, cwd)


def _reason(e: BaseException) -> str:
    line = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def import_module(module: str, key: str, value: Any = None) -> ModuleType:
    """Import a user module by name and remember its source file and hash.

    Raises
    ------
    ConfigError
        One line with the import error's reason (not found, syntax error, an exception
        raised while the module ran).
    """
    if not isinstance(module, str) or not _MODULE.match(module):
        raise ConfigError(key, module, "a module name such as mylayers or mypkg.layers")
    _ensure_launch_dir()
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        where = os.getcwd()
        raise ConfigError(key, value or module, f"cannot import module {module!r}: {_reason(e)} "
                          f"(searched the launch directory {where} and the Python path)") from None
    except Exception as e:  # noqa: BLE001 - any failure of the user's module is one line
        raise ConfigError(key, value or module, f"importing module {module!r} failed: {_reason(e)}") from None
    remember(mod)
    return mod


def remember(mod: ModuleType) -> Source | None:
    """Record ``mod``'s source file and hash (``None`` for modules without a ``.py`` file)."""
    f = getattr(mod, "__file__", None)
    if not f or not f.endswith(".py") or not os.path.isfile(f):
        return None
    src = Source(mod.__name__, os.path.abspath(f), file_hash(f))
    _SOURCES[mod.__name__] = src
    return src


def sources() -> list[Source]:
    """Every user module imported through this module, in import order."""
    return list(_SOURCES.values())


def load_modules(modules: Iterable[str] | None, key: str = "plugins") -> list[ModuleType]:
    """Import the modules of a ``plugins`` list (their classes register themselves)."""
    if modules is None:
        return []
    if isinstance(modules, str) or not isinstance(modules, (list, tuple)):
        raise ConfigError(key, modules, "a list of module names, e.g. [mylayers]")
    return [import_module(m, f"{key}[{i}]") for i, m in enumerate(modules)]


def base_class(kind: str) -> type:
    mod, name, _ = PROTOCOLS[kind]
    return getattr(importlib.import_module(mod), name)


def resolve(kind: str, path: str, key: str) -> type:
    """The class named by ``path`` as a component of ``kind``, protocol-checked.

    The returned class is the user's own when it subclasses nets' base class of the kind,
    else a subclass that adds that base (its helpers: ``Loss.value``, ``Optimizer.step``
    ...), with the user's methods first. Its ``name`` is ``path``.
    """
    if (kind, path) in _RESOLVED:
        return _RESOLVED[(kind, path)]
    if not is_import_path(path):
        raise ConfigError(key, path, "an import path such as mylayers:SigmoidDense")
    module, attr = path.split(":")
    obj: Any = import_module(module, key, path)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(key, path, f"module {module!r} ({getattr(sys.modules[module], '__file__', '?')}) "
                              f"has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not inspect.isclass(obj):
        raise ConfigError(key, path, f"{attr} is a {type(obj).__name__}, not a class")
    if kind not in PROTOCOLS:
        raise ConfigError(key, path, f"components of kind {kind!r} cannot be user classes")
    base = base_class(kind)
    check_protocol(kind, obj, base, path, key)
    ns = {"name": path, "__module__": obj.__module__, "__qualname__": obj.__qualname__,
          "__doc__": obj.__doc__, "user_path": path}
    cls = type(obj.__name__, (obj,) if issubclass(obj, base) else (obj, base), ns)
    _RESOLVED[(kind, path)] = cls
    return cls


def check_protocol(kind: str, cls: type, base: type, path: str, key: str) -> None:
    """One ``ConfigError`` line naming the first missing or mis-shaped method.

    A method is missing when neither the class nor nets' base class of the kind provides
    a working one (the base's ``forward`` of a layer only raises ``NotImplementedError``;
    its ``build`` is a usable default). Methods the class defines must accept the
    arguments nets calls them with.
    """
    _, _, methods = PROTOCOLS[kind]
    if kind == "model" and not issubclass(cls, base):
        raise ConfigError(key, path, f"{cls.__name__} does not follow the model protocol: a "
                          "model must subclass nets.models.Sequential (docs/components.md)")
    for m, nargs in methods.items():
        own = _lookup(cls, m)
        from_base = own is None or own is _lookup(base, m)
        if kind == "dataset" and m == "load" and from_base:
            if _lookup(cls, "_load") not in (None, _lookup(base, "_load")):
                continue  # a Dataset subclass implementing _load, as the built-ins do
            raise ConfigError(key, path, f"{cls.__name__} does not follow the dataset protocol: "
                              "method load(rng) is missing (or _load(rng) in a nets.data.Dataset "
                              "subclass; docs/components.md)")
        if from_base:
            if m in ABSTRACT.get(kind, ()):
                raise ConfigError(key, path, f"{cls.__name__} does not follow the {kind} "
                                  f"protocol: method {m}{_SIGNATURES[kind][m]} is missing "
                                  "(docs/components.md)")
            continue
        if not callable(own):
            raise ConfigError(key, path, f"{cls.__name__}.{m} is not a method")
        if not _accepts(own, nargs):
            raise ConfigError(key, path, f"{cls.__name__}.{m} must accept "
                              f"{_SIGNATURES[kind][m]}; it is {m}{_sig(own)} (docs/components.md)")


# Methods nets' base classes leave to the subclass (they raise NotImplementedError).
ABSTRACT = {"activation": ("forward", "backward"), "loss": ("per_sample", "grad"),
            "layer": ("forward", "backward"), "optimizer": ("update",),
            "schedule": ("update",), "init": ("__call__",), "target": ("encode",)}

_SIGNATURES = {
    "activation": {"forward": "(Z)", "backward": "(dA, A)"},
    "loss": {"per_sample": "(Y, T)", "value": "(Y, T, reduction)", "grad": "(Y, T, reduction)"},
    "layer": {"build": "(in_shape, rng, dtype)", "forward": "(X, training)",
              "backward": "(dY)"},
    "optimizer": {"update": "(params, lr)"},
    "schedule": {"start": "(base_lr)", "update": "(t, loss, val_loss)"},
    "dataset": {"load": "(rng)"},
    "init": {"__call__": "(shape, fan_in, fan_out, rng, dtype)"},
    "target": {"encode": "(y, n_classes, dtype)"},
    "model": {"forward": "(X, training)", "backward": "(dZ)", "predict": "(X)",
              "named_params": "()"},
}


def _lookup(cls: type, name: str):
    """``name`` as defined in ``cls`` or a base other than ``object`` (no metaclass
    attributes: ``type.__call__`` is not an initializer's ``__call__``)."""
    for k in cls.__mro__:
        if k is not object and name in vars(k):
            return vars(k)[name]
    return None


def _accepts(fn, nargs: int) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        sig.bind(*([None] * (nargs + 1)))
    except TypeError:
        return False
    return True


def _sig(fn) -> str:
    try:
        s = str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(...)"
    return s.replace("(self, ", "(").replace("(self)", "()")


def finish(kind: str, obj: Any, key: str) -> Any:
    """Fill the attributes nets reads that a non-subclass left out, and check that
    every constructor argument is kept as an attribute of the same name (``hparams``
    logs and rebuilds the component from them)."""
    for attr, default in DEFAULTS.get(kind, {}).items():
        if not hasattr(obj, attr):
            setattr(obj, attr, list(default) if isinstance(default, tuple) and attr == "params"
                    else default)
    if kind == "optimizer" and not isinstance(getattr(obj, "state", None), dict):
        obj.state = {}
    if kind == "optimizer" and not hasattr(obj, "lr"):
        raise ConfigError(key, type(obj).name, f"{type(obj).__name__} must take lr (the starting "
                          "learning rate) and keep it as self.lr (docs/components.md)")
    for p in type(obj).hparam_names():
        if not hasattr(obj, p):
            raise ConfigError(key, type(obj).name, f"{type(obj).__name__}.__init__ argument "
                              f"{p!r} is not kept as self.{p} (nets logs and rebuilds "
                              "components from these attributes; docs/components.md)")
    return obj


def is_user(obj: Any) -> bool:
    """Whether ``obj`` (or its class) was loaded by import path or from a plugins module."""
    cls = obj if inspect.isclass(obj) else type(obj)
    return bool(getattr(cls, "user_path", None)) or cls.__module__ in _SOURCES


def verify(recorded: Iterable[Source]) -> list[str]:
    """Problems with re-importing ``recorded`` modules from here, one line each.

    Each module is located (launch directory first, then the Python path) without
    running it, and its file's hash compared with the recorded one. A package's
    ``__init__`` may run to locate a submodule; the module itself never does.
    """
    _ensure_launch_dir()
    out = []
    for src in recorded:
        try:
            spec = importlib.util.find_spec(src.module)
        except (ImportError, ValueError) as e:
            spec = None
            why = _reason(e)
        else:
            why = ""
        origin = getattr(spec, "origin", None) if spec else None
        if not origin or not os.path.isfile(origin):
            out.append(f"user module {src.module!r} ({src.filename}) cannot be found from "
                       f"{os.getcwd()} or the Python path" + (f" ({why})" if why else ""))
            continue
        h = file_hash(origin)
        if h != src.sha256:
            out.append(f"user module {src.module!r} at {origin} has changed since the run "
                       f"(sha256 {h[:12]}, recorded {src.sha256[:12]})")
    return out


def forget(module: str) -> None:
    """Drop ``module`` (and its submodules) from the import cache, from what this process
    remembers and from the registries it registered names in, so the next build imports
    the file again (after an edit in a long-running session; tests use it between
    temporary directories)."""
    from nets.registry import REGISTRIES

    names = [m for m in sys.modules if m == module or m.startswith(module + ".")]
    for reg in REGISTRIES.values():
        for key, cls in reg.classes().items():
            if cls.__module__ in names:
                reg.unregister(key)
    for name in names:
        del sys.modules[name]
        _SOURCES.pop(name, None)
    for k in [k for k in _RESOLVED if k[1].split(":")[0] == module
              or k[1].startswith(module + ".")]:
        del _RESOLVED[k]
