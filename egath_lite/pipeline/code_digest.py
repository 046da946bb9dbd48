"""Digests of the code a stage runs: the paper's modules (``egath_lite.core.*``) and the callables a caller passes in.

A stage's key digests its config fields, so without these an edit to ``core/losses.py`` (notebook 04's
exercise) would return the artifact the old loss made, with no message. A stage therefore declares the
``core`` modules it runs (``Stage.code``) and its key holds one digest per module, so the stage can say
which module changed.

**What a module's digest covers.** The sha256 of its *normalised* source: the module is parsed
(``ast``), its docstrings are dropped and it is written back with ``ast.unparse``. Comments, blank
lines, line breaks, quotes and docstrings never reach that text, so reformatting or documenting a
module keeps its artifacts; any change to a statement, a default value or a constant recomputes them.
(A Python upgrade that writes the same tree back differently recomputes them once, too.)

**The code that runs, not the file.** The first digest of a module in a process is kept for that
module object: editing ``core/losses.py`` while a notebook kernel holds the old module does not change
the key (the old code is what would run); it prints that the edit takes effect after a kernel restart
or ``importlib.reload``. A reload (a new module spec) is digested afresh.

**Callables passed in** (``ensure_codes(loss_fn=, model_fn=)``) are keyed by their own normalised
source (``inspect.getsource``), plus what the source does not show: default values, closure variables
and the globals the code names (constants, arrays and tensors by value; functions and classes defined
beside it by their own source, recursively; modules and library objects by name). A
``functools.partial`` adds its arguments, a callable object its class and its state, a class its
methods and class attributes. A lambda, or a function whose source cannot be read (made by ``exec``),
is refused with a ``CodeKeyError`` saying to define it with ``def`` in a cell or a file: its key could
not follow an edit.
"""

from __future__ import annotations

import ast
import dataclasses
import dis
import enum
import functools
import hashlib
import importlib
import inspect
import marshal
import os
import textwrap
import types
from collections.abc import Mapping
from typing import Any

from egath_lite.errors import EgathError


def _method_modules() -> tuple[str, ...]:
    """The registry, its shared helpers (``_common``, ``_bertadam``, ...) and every method module installed."""
    import pkgutil

    import egath_lite.core.methods as package
    from egath_lite.core.methods import available_methods

    helpers = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("_"))
    names = [m for m in available_methods() if m != "egath"]
    return (
        "egath_lite.core.methods",
        *(f"egath_lite.core.methods.{h}" for h in helpers),
        *(f"egath_lite.core.methods.{m}" for m in names),
    )


# Every module of the paper (egath_lite/core/): what a whole notebook run, a grid cell, executes.
CORE_MODULES = (
    "egath_lite.core.label_graph",
    "egath_lite.core.label_embeddings",
    "egath_lite.core.models",
    "egath_lite.core.losses",
    "egath_lite.core.train",
    "egath_lite.core.lsh",
    *_method_modules(),  # the comparison methods of this installation (egath_lite.core.methods)
)


# class attributes that say where a class is, not what it does
_CLASS_NOISE = frozenset(
    ("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__firstlineno__", "__static_attributes__")
)


class CodeKeyError(EgathError, ValueError):
    """A callable whose code cannot key an artifact (a lambda, a function without readable source)."""


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


# --------------------------------------------------------------------------- normalised source
def normalised_source(source: str) -> str:
    """``source`` parsed and written back without docstrings, comments or formatting (``ast.unparse``)."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


# --------------------------------------------------------------------------- modules
_SNAPSHOTS: dict[str, tuple[Any, tuple[int, int] | None, str]] = {}  # name -> (spec, file stat, digest)
_WARNED: set[str] = set()


def _stat(path: str | None) -> tuple[int, int] | None:
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st else None


def _module_text(module: types.ModuleType) -> str:
    loader = getattr(module.__spec__, "loader", None)
    source = loader.get_source(module.__name__) if loader is not None and hasattr(loader, "get_source") else None
    if source is not None:
        return normalised_source(source)
    code = loader.get_code(module.__name__) if loader is not None and hasattr(loader, "get_code") else None
    if code is None:
        raise CodeKeyError(f"cannot read the source or the code of {module.__name__} to key the artifacts")
    return marshal.dumps(code).hex()  # installed without its source: its compiled code keys it


def module_digest(name: str) -> str:
    """16-hex digest of module ``name``'s normalised source, as loaded in this process (see the module doc)."""
    module = importlib.import_module(name)
    spec, stat = module.__spec__, _stat(getattr(module, "__file__", None))
    snap = _SNAPSHOTS.get(name)
    if snap is not None and snap[0] is spec:
        if stat != snap[1] and name not in _WARNED:
            _WARNED.add(name)
            print(
                f"[code] {name} was edited after it was imported: the code that runs (and keys the artifacts) is "
                f"still the imported one; restart the kernel (or importlib.reload it) to run the edit"
            )
        return snap[2]
    digest = _sha(_module_text(module))
    _SNAPSHOTS[name] = (spec, stat, digest)
    return digest


# --------------------------------------------------------------------------- callables passed in
def callable_name(fn: Any) -> str:
    """A readable name: ``my_loss``, ``partial(egath_loss)``, ``TripletLoss()`` (an instance)."""
    if isinstance(fn, functools.partial):
        return f"partial({callable_name(fn.func)})"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else f"{type(fn).__qualname__}()"


def callable_fingerprint(fn: Any, role: str = "callable") -> dict[str, str]:
    """``{"name", "digest"}`` of a callable passed in place of the paper's code; CodeKeyError if it cannot be keyed."""
    return {"name": callable_name(fn), "digest": _sha(repr(_callable_parts(fn, role, set(), 0)))}


def _callable_parts(fn: Any, role: str, seen: set[int], depth: int) -> Any:
    if isinstance(fn, functools.partial):
        return (
            "partial",
            _callable_parts(fn.func, role, seen, depth),
            [_value(a, seen, depth) for a in fn.args],
            {k: _value(v, seen, depth) for k, v in sorted(fn.keywords.items())},
        )
    if inspect.ismethod(fn):
        return ("method", _callable_parts(fn.__func__, role, seen, depth), _value(fn.__self__, seen, depth))
    if inspect.isfunction(fn):
        return _function_parts(fn, role, seen, depth)
    if inspect.isclass(fn):
        return _class_parts(fn, role, seen, depth)
    if callable(fn) and hasattr(fn, "__dict__") and not isinstance(fn, types.BuiltinFunctionType):
        return ("object", _class_parts(type(fn), role, seen, depth), _value(vars(fn), seen, depth))
    raise CodeKeyError(
        f"{role}={fn!r} has no Python source to key its artifact; pass a function defined with `def` in a "
        f"notebook cell or a .py file"
    )


def _function_parts(fn: types.FunctionType, role: str, seen: set[int], depth: int) -> Any:
    if fn.__name__ == "<lambda>":
        raise CodeKeyError(
            f"{role} is a lambda: its source cannot key the artifact reliably; define it with `def` in a notebook "
            f"cell or a .py file (e.g. `def my_loss(out, Y, B): ...`) and pass that"
        )
    try:
        source = normalised_source(inspect.getsource(fn))
    except (OSError, TypeError, SyntaxError):
        raise CodeKeyError(
            f"{role}={fn.__qualname__}: its source cannot be read (made by exec or typed into a bare interpreter?), "
            f"so an edit to it could not change the artifact's key; define it with `def` in a notebook cell or a "
            f"file and pass that"
        ) from None
    seen = seen | {id(fn)}
    code = fn.__code__
    refs = {}
    for name in sorted(_names(code)):
        if name in fn.__globals__:
            refs[name] = _reference(fn.__globals__[name], fn.__module__, role, seen, depth)
    closure = {
        name: _reference(cell.cell_contents, fn.__module__, role, seen, depth)
        for name, cell in zip(code.co_freevars, fn.__closure__ or ())
        if _cell_filled(cell)
    }
    defaults = _value((fn.__defaults__, fn.__kwdefaults__), seen, depth)
    return ("function", source, refs, closure, defaults)


def _class_parts(cls: type, role: str, seen: set[int], depth: int) -> Any:
    if cls.__module__ == "builtins":
        raise CodeKeyError(f"{role}: a {cls.__name__} has no Python source to key its artifact; pass a `def` function")
    seen = seen | {id(cls)}
    members = {}
    for name, member in sorted(vars(cls).items()):
        if name in _CLASS_NOISE:
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = (member.fget, member.fset, member.fdel)
            members[name] = [None if f is None else _member_parts(f, role, seen, depth + 1) for f in member]
        elif inspect.isfunction(member):
            members[name] = _member_parts(member, role, seen, depth + 1)
        else:
            members[name] = _value(member, seen, depth + 1)
    bases = [_reference(b, cls.__module__, role, seen, depth) for b in cls.__bases__]
    return ("class", cls.__qualname__, bases, members)


def _member_parts(fn: types.FunctionType, role: str, seen: set[int], depth: int) -> Any:
    """A method's parts; one without source (a dataclass's generated ``__init__``) by its compiled code."""
    try:
        return _function_parts(fn, role, seen, depth)
    except CodeKeyError:
        return ("compiled", _sha(marshal.dumps(fn.__code__)), _value(fn.__defaults__, seen, depth))


def _reference(obj: Any, module: str, role: str, seen: set[int], depth: int) -> Any:
    """What a name the code reads contributes: code defined beside it by its source, a library object by name."""
    if isinstance(obj, types.ModuleType):
        return ("module", obj.__name__)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
        if getattr(obj, "__module__", None) != module or id(obj) in seen or depth > 8:
            return ("ref", name)  # a library's code: its module (egath_lite.core) is keyed by the stage itself
        return _callable_parts(obj, role, seen, depth + 1)
    if callable(obj) and not isinstance(obj, (type, types.BuiltinFunctionType)) and hasattr(obj, "__dict__"):
        if getattr(type(obj), "__module__", None) == module and id(obj) not in seen:
            return _callable_parts(obj, role, seen | {id(obj)}, depth + 1)
    return _value(obj, seen, depth)


def _value(v: Any, seen: set[int], depth: int) -> Any:
    """A stable description of a value: constants as such, arrays and tensors by their bytes, objects by state."""
    if v is None or isinstance(v, (bool, int, float, str, complex)):
        return v
    if isinstance(v, bytes):
        return ("bytes", _sha(v))
    if isinstance(v, enum.Enum):
        return repr(v)
    if depth > 6 or id(v) in seen:
        return ("…", type(v).__qualname__)
    seen = seen | {id(v)}
    if isinstance(v, (list, tuple)):
        return [type(v).__name__, *(_value(x, seen, depth + 1) for x in v)]
    if isinstance(v, (set, frozenset)):
        return ["set", *sorted(repr(_value(x, seen, depth + 1)) for x in v)]
    if isinstance(v, Mapping):
        return ["dict", *sorted((str(k), repr(_value(x, seen, depth + 1))) for k, x in v.items())]
    array = _array_bytes(v)
    if array is not None:
        return array
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        fields = {f.name: _value(getattr(v, f.name), seen, depth + 1) for f in dataclasses.fields(v)}
        return ("dataclass", type(v).__qualname__, fields)
    if inspect.isfunction(v) or inspect.isclass(v) or inspect.ismethod(v) or isinstance(v, types.ModuleType):
        return ("ref", f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', getattr(v, '__name__', '?'))}")
    if hasattr(v, "__dict__") and not isinstance(v, type):
        return ("object", type(v).__qualname__, _value(vars(v), seen, depth + 1))
    text = repr(v)
    return text if " at 0x" not in text else ("object", type(v).__qualname__)


def _array_bytes(v: Any) -> Any:
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu().contiguous()
        return ("tensor", str(t.dtype), tuple(t.shape), _sha(t.reshape(-1).view(torch.uint8).numpy().tobytes()))
    if isinstance(v, np.ndarray):
        return ("array", str(v.dtype), v.shape, _sha(np.ascontiguousarray(v).tobytes()))
    if isinstance(v, np.generic):
        return v.item()
    return None


def _names(code: types.CodeType) -> set[str]:
    """Global names a code object (and the functions, lambdas and comprehensions inside it) reads or writes."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_OPS and isinstance(i.argval, str)}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


_GLOBAL_OPS = frozenset(("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "STORE_NAME"))


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
