"""Does the code the GPU study loads use only torch API that an older torch (the device image's 2.11) has?

A static check, run with the development torch (2.13) against the *sources* of the older one (the ``*.py``
and ``*.pyi`` files of its wheel, unpacked, never installed)::

    python tools/torch_compat.py --torch-src /tmp/t211/src [--modules enlcn.study.gpu.workers ...]

1. **Modules.** ``enlcn.study.gpu.__main__`` is imported, and every ``enlcn.*`` module then in
   ``sys.modules`` is taken, closed over the imports it makes later (function-level imports) and over lazy
   ``"enlcn.x:Name"`` strings (the attention registry); or the modules given with ``--modules``.
2. **Uses.** Each module's source is parsed: every attribute chain rooted at a name an import bound to torch
   (``import torch``, ``import torch.nn.functional as F``, ``from torch import nn``, in a function too), the
   imported names themselves, the keyword names of each call of such a chain, and the names of methods called
   on any other object that ``torch.Tensor``, ``torch.nn.Module`` or ``torch.optim.Optimizer`` has (2.13).
3. **Check.** Each chain is resolved in the running torch (its kind: module, class, function, builtin,
   attribute), then looked up by the same dotted path in both source trees, following ``from x import y``,
   ``from x import *`` (with ``__all__``), ``import x as y``, assignments such as
   ``pad = _add_docstr(torch._C._nn.pad, ...)`` and class bases; the C builtins are found in the ``.pyi``
   stubs (``torch._C._VariableFunctions``, ``torch._C.TensorBase``, ``torch._C._nn``). Where the dotted path
   does not resolve, the place 2.13 defines the object (``__module__`` and ``__qualname__``) is tried. A
   keyword must be a parameter of some overload of the 2.11 definition (``**kwargs`` takes all; a class
   is called through ``__init__`` or ``__new__``).

**missing** means found statically in 2.13's own sources and not in 2.11's (a name, or a keyword 2.13's
signature takes). What 2.13's sources do not show either is **unresolved**, with the reason, never ok.
A method name is checked on each class that has it in 2.13; a keyword that 2.13's method does not take
either is taken to be a call on some other object (``str.split(maxsplit=...)``) and skipped.

**What it cannot see:** names reached dynamically (``getattr(torch, name)``, listed as unresolved; strings
naming ops or backends, ``torch.ops.*``); attributes of values (``x.shape``, ``t.dtype.itemsize``) and
methods of classes other than the three above; positional arguments (their number or order); a behaviour
or default that changed under the same signature (numerics, warnings, deprecations that now raise); what
only runs on CUDA (kernels, ``torch.cuda`` runtime behaviour, bf16/TF32 paths) or in C++ beyond the stub;
names a module binds at import time in a loop (``globals()[name] = ...``) and are not in a stub; code
outside the collected modules. Passing is therefore evidence, not proof, that the study runs on 2.11.
Exit status: 1 if anything is missing, else 0.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ENTRY = "enlcn.study.gpu.__main__"
PREFIX = "enlcn"
RECEIVERS = ("torch.Tensor", "torch.nn.Module", "torch.optim.Optimizer")
MISSING = "missing in 2.11"
DOCSTRING_WRAPPERS = {"_add_docstr", "add_docstr"}  # f = _add_docstr(g, doc) is g
#: a lazily imported "package.module:Name" or "package.module" string naming one of our modules
LAZY_MODULE = re.compile(rf"^({PREFIX}(?:\.\w+)+)(?::\w+)?$")


# --------------------------------------------------------------------------- a torch source tree, via ast


@dataclass
class Scope:
    """The names one module (or class body) binds at its top level, as written."""

    module: str
    names: dict[str, list[tuple]] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)
    all: set[str] | None = None


@dataclass
class Found:
    """What a dotted path names in a source tree."""

    #: "module", "function", "class", "instance" (of a class: ``matmul = cuBLASModule()``) or "value"
    kind: str
    where: str  # the module it is defined in
    defs: tuple[ast.FunctionDef | ast.AsyncFunctionDef, ...] = ()  # a function's overloads
    scope: Scope | None = None  # a class's body
    node: ast.ClassDef | None = None


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module of ``from <level dots><name> import ...`` written in ``module``."""
    if not level:
        return name or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _bind(scope: Scope, name: str, binding: tuple) -> None:
    scope.names.setdefault(name, []).append(binding)


def _strings(node: ast.expr) -> set[str]:
    """The string literals of a list or tuple (``__all__``)."""
    if isinstance(node, ast.List | ast.Tuple):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()


def bind_statements(stmts: Iterable[ast.stmt], scope: Scope, is_package: bool) -> None:
    """Record what ``stmts`` bind in ``scope``, entering ``if``/``try``/``with``/loops, not functions."""
    for st in stmts:
        if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef):
            _bind(scope, st.name, ("def", st))
        elif isinstance(st, ast.ClassDef):
            _bind(scope, st.name, ("class", st))
        elif isinstance(st, ast.Assign | ast.AnnAssign | ast.AugAssign):
            _bind_assignment(st, scope)
        elif isinstance(st, ast.Import):
            for a in st.names:
                if a.asname:
                    _bind(scope, a.asname, ("module", a.name))
                else:
                    head = a.name.split(".")[0]
                    _bind(scope, head, ("module", head))
        elif isinstance(st, ast.ImportFrom):
            source = _absolute(scope.module, is_package, st.level, st.module)
            for a in st.names:
                if a.name == "*":
                    scope.stars.append(source)
                else:
                    _bind(scope, a.asname or a.name, ("from", source, a.name))
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            _bind_all_extension(st.value, scope)
        else:
            bind_statements(_nested_blocks(st), scope, is_package)


def _nested_blocks(st: ast.stmt) -> list[ast.stmt]:
    """The statements of an ``if``/``try``/``with``/loop (their names bind in the enclosing scope)."""
    if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return []
    out = [s for body in ("body", "orelse", "finalbody") for s in getattr(st, body, [])]
    return out + [s for handler in getattr(st, "handlers", []) for s in handler.body]


def _bind_assignment(st: ast.Assign | ast.AnnAssign | ast.AugAssign, scope: Scope) -> None:
    targets = st.targets if isinstance(st, ast.Assign) else [st.target]
    for target in targets:
        names = target.elts if isinstance(target, ast.Tuple) else [target]
        for t in names:
            if not isinstance(t, ast.Name):
                continue
            if t.id == "__all__" and st.value is not None:
                scope.all = (scope.all or set()) | _strings(st.value)
            plain = not isinstance(target, ast.Tuple) and not isinstance(st, ast.AugAssign)
            _bind(scope, t.id, ("value", st.value if plain else None))


def _bind_all_extension(call: ast.Call, scope: Scope) -> None:
    """``__all__.extend([...])`` / ``__all__.append("x")``."""
    f = call.func
    on_all = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "__all__"
    if on_all and call.args:
        arg = call.args[0]
        extra = {arg.value} if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else _strings(arg)
        scope.all = (scope.all or set()) | extra


def takes_keyword(fn: ast.FunctionDef | ast.AsyncFunctionDef, keyword: str) -> bool:
    """Whether ``fn`` accepts ``keyword=`` (a named parameter, not positional-only, or ``**kwargs``)."""
    a = fn.args
    return a.kwarg is not None or keyword in {p.arg for p in a.args + a.kwonlyargs}


class SourceTree:
    """A package's sources (``.py`` and ``.pyi``) under ``root``, read with ast, never imported."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._scopes: dict[str, Scope | None] = {}

    def module_files(self, module: str) -> list[Path]:
        base = self.root.joinpath(*module.split("."))
        candidates = [base.parent / f"{base.name}.py", base / "__init__.py"]
        candidates += [base.parent / f"{base.name}.pyi", base / "__init__.pyi"]
        return [p for p in candidates if p.is_file()]

    def scope(self, module: str) -> Scope | None:
        """The top-level bindings of ``module``'s ``.py`` and ``.pyi`` files together; None if it has none."""
        if module not in self._scopes:
            files = self.module_files(module)
            scope = Scope(module) if files else None
            for path in files:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
                bind_statements(tree.body, scope, path.stem == "__init__")
            self._scopes[module] = scope
        return self._scopes[module]

    def _class_scope(self, module: str, node: ast.ClassDef) -> Scope:
        key = f"{module}:{node.name}:{node.lineno}"
        if key not in self._scopes:
            self._scopes[key] = Scope(module)
            bind_statements(node.body, self._scopes[key], False)
        return self._scopes[key]

    def lookup(self, path: str) -> Found | None:
        """What the dotted ``path`` (``torch.nn.functional.pad``) names, or None."""
        head, *rest = path.split(".")
        found = Found("module", head) if self.scope(head) else None
        for name in rest:
            if found is None:
                return None
            found = self.member(found, name, set())
        return found

    def member(self, owner: Found, name: str, seen: set) -> Found | None:
        if owner.kind == "module":
            return self._module_member(owner.where, name, seen)
        if owner.kind in ("class", "instance"):
            return self._class_member(owner, name, seen)
        return None

    def _module_member(self, module: str, name: str, seen: set) -> Found | None:
        key = (module, name)
        scope = self.scope(module)
        if key in seen or scope is None:
            return None
        seen.add(key)
        for binding in scope.names.get(name, []):
            found = self._follow(binding, scope, name, set(seen))
            if found:
                return found
        if self.module_files(f"{module}.{name}"):
            return Found("module", f"{module}.{name}")
        for star in scope.stars:
            star_scope = self.scope(star)
            exported = star_scope.all if star_scope and star_scope.all is not None else None
            if (name in exported) if exported is not None else not name.startswith("_"):
                found = self._module_member(star, name, set(seen))
                if found:
                    return found
        return None

    def _class_member(self, cls: Found, name: str, seen: set) -> Found | None:
        key = (cls.where, cls.node.name if cls.node else "?", name)
        if key in seen:
            return None
        seen.add(key)
        for binding in cls.scope.names.get(name, []):
            found = self._follow(binding, cls.scope, name, set(seen), module=cls.where)
            if found:
                return found
        for base in cls.node.bases if cls.node else []:
            parent = self.evaluate(cls.where, base, set(seen))
            if parent and parent.kind == "class":
                found = self._class_member(parent, name, set(seen))
                if found:
                    return found
        return self._dynamic_attribute(cls, name)

    def _dynamic_attribute(self, cls: Found, name: str) -> Found | None:
        """``name`` as a string the class's ``__getattr__`` compares with (``if name == "allow_tf32"``)."""
        for binding in cls.scope.names.get("__getattr__", []):
            if binding[0] == "def" and any(
                isinstance(n, ast.Constant) and n.value == name for n in ast.walk(binding[1])
            ):
                return Found("value", cls.where)
        return None

    def _follow(self, binding: tuple, scope: Scope, name: str, seen: set, module: str = "") -> Found | None:
        module = module or scope.module
        kind = binding[0]
        if kind == "def":
            defs = tuple(b[1] for b in scope.names[name] if b[0] == "def")
            return Found("function", module, defs=defs)
        if kind == "class":
            return Found("class", module, scope=self._class_scope(module, binding[1]), node=binding[1])
        if kind == "module":
            return Found("module", binding[1]) if self.scope(binding[1]) else None
        if kind == "from":
            found = self._module_member(binding[1], binding[2], seen)
            if found is None and self.scope(f"{binding[1]}.{binding[2]}"):
                found = Found("module", f"{binding[1]}.{binding[2]}")
            return found
        value = binding[1]
        if isinstance(value, ast.Call) and value.args and _name_of(value.func) in DOCSTRING_WRAPPERS:
            value = value.args[0]  # pad = _add_docstr(torch._C._nn.pad, r"...")
        if isinstance(value, ast.Name | ast.Attribute):
            target = self.evaluate(module, value, seen)
            if target:
                return target
        if isinstance(value, ast.Call):  # matmul = cuBLASModule(): its class's members
            cls = self.evaluate(module, value.func, seen)
            if cls and cls.kind == "class":
                return Found("instance", cls.where, scope=cls.scope, node=cls.node)
        return Found("value", module)

    def evaluate(self, module: str, expr: ast.expr, seen: set) -> Found | None:
        """A name or attribute chain written in ``module``, resolved in this tree."""
        if isinstance(expr, ast.Name):
            return self._module_member(module, expr.id, set(seen))
        if isinstance(expr, ast.Attribute):
            owner = self.evaluate(module, expr.value, seen)
            return self.member(owner, expr.attr, set(seen)) if owner else None
        return None

    def signature_takes(self, found: Found, keyword: str) -> bool | None:
        """Whether ``found`` takes ``keyword=`` when called; None where the source shows no signature."""
        defs = self.call_defs(found)
        return any(takes_keyword(d, keyword) for d in defs) if defs else None

    def call_defs(self, found: Found) -> tuple:
        if found.kind == "function":
            return found.defs
        if found.kind == "instance":
            call = self._class_member(found, "__call__", set())
            return call.defs if call and call.kind == "function" else ()
        if found.kind == "class":
            defs: tuple = ()
            for method in ("__init__", "__new__"):
                m = self._class_member(found, method, set())
                defs += m.defs if m and m.kind == "function" else ()
            return defs
        return ()


def _name_of(expr: ast.expr) -> str:
    return expr.id if isinstance(expr, ast.Name) else expr.attr if isinstance(expr, ast.Attribute) else ""


# --------------------------------------------------------------------------- the uses of torch in a module


@dataclass
class Use:
    """One torch chain (or one method name) used in the checked modules."""

    chain: str
    method: bool = False
    keywords: set[str] = field(default_factory=set)
    sites: list[str] = field(default_factory=list)
    dynamic: bool = False  # getattr(torch..., name)


def torch_bindings(stmts: Iterable[ast.stmt]) -> dict[str, str]:
    """Names the imports among ``stmts`` (entering ``if``/``try``, not functions) bind to a torch path."""
    out: dict[str, str] = {}
    for st in stmts:
        if isinstance(st, ast.Import):
            for a in st.names:
                if _is_torch(a.name):
                    out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(st, ast.ImportFrom) and not st.level and _is_torch(st.module or ""):
            for a in st.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{st.module}.{a.name}"
        else:
            out.update(torch_bindings(_nested_blocks(st)))
    return out


def _is_torch(module: str) -> bool:
    return module == "torch" or module.startswith("torch.")


class UseCollector(ast.NodeVisitor):
    """Collects the torch chains and method calls of one module's source."""

    def __init__(self, where: str, method_names: set[str]) -> None:
        self.where = where
        self.method_names = method_names
        self.scopes: list[dict[str, str]] = [{}]
        self.uses: dict[tuple[str, bool], Use] = {}

    def record(self, chain: str, line: int, method: bool = False, keywords: Iterable[str] = ()) -> Use:
        use = self.uses.setdefault((chain, method), Use(chain, method))
        use.keywords.update(keywords)
        use.sites.append(f"{self.where}:{line}")
        return use

    def chain(self, node: ast.expr) -> str | None:
        """``F.interpolate`` -> ``torch.nn.functional.interpolate`` where ``F`` is bound to torch."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.scopes[-1]:
            return ".".join([self.scopes[-1][node.id], *reversed(parts)])
        return None

    def _enter(self, node: ast.AST, body: list[ast.stmt]) -> None:
        bound = torch_bindings(body)
        for path in bound.values():
            self.record(path, getattr(node, "lineno", 1))
        self.scopes.append({**self.scopes[-1], **bound})
        self.generic_visit(node)
        self.scopes.pop()

    def visit_Module(self, node: ast.Module) -> None:
        self._enter(node, node.body)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._enter(node, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._enter(node, node.body)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = self.chain(node)
        if chain:
            self.record(chain, node.lineno)
        else:
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        chain = self.chain(node)
        if chain and chain.count("."):  # a bare ``torch`` is its import, recorded there
            self.record(chain, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        keywords = [k.arg for k in node.keywords if k.arg]
        chain = self.chain(node.func)
        if chain:
            self.record(chain, node.lineno, keywords=keywords)
        elif isinstance(node.func, ast.Name) and node.func.id == "getattr" and node.args:
            target = self.chain(node.args[0])
            if target:
                self.record(f"getattr({target}, ...)", node.lineno).dynamic = True
        elif isinstance(node.func, ast.Attribute) and node.func.attr in self.method_names:
            self.record(node.func.attr, node.lineno, method=True, keywords=keywords)
        if not chain:
            self.visit(node.func)
        for arg in [*node.args, *node.keywords]:
            self.visit(arg)


def module_uses(path: Path, where: str, method_names: set[str]) -> list[Use]:
    """The torch uses of the module at ``path`` (``where`` names it in the table)."""
    collector = UseCollector(where, method_names)
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return list(collector.uses.values())


def merge(uses: Iterable[Use]) -> list[Use]:
    """One use per chain (or method name) over all modules."""
    merged: dict[tuple[str, bool], Use] = {}
    for u in uses:
        m = merged.setdefault((u.chain, u.method), Use(u.chain, u.method, dynamic=u.dynamic))
        m.keywords |= u.keywords
        m.sites += u.sites
    return sorted(merged.values(), key=lambda u: (u.method, u.chain))


# --------------------------------------------------------------------------- the modules the study loads


def referenced_modules(name: str, prefix: str = PREFIX) -> set[str]:
    """``prefix`` modules the source of module ``name`` imports anywhere or names in a lazy-import string."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return set()
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    is_package = spec.submodule_search_locations is not None
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_package, node.level, node.module)
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = LAZY_MODULE.match(node.value)
            out |= {m.group(1)} if m else set()
    return {m for m in out if m == prefix or m.startswith(prefix + ".")}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def study_modules(entry: str = ENTRY, prefix: str = PREFIX) -> list[str]:
    """The ``prefix`` modules importing ``entry`` loads, closed over the imports their sources make later."""
    importlib.import_module(entry)
    found = {m for m in sys.modules if m == prefix or m.startswith(prefix + ".")}
    todo = sorted(found)
    while todo:
        for dep in referenced_modules(todo.pop(), prefix):
            if dep not in found and _is_module(dep):
                found.add(dep)
                todo.append(dep)
    return sorted(found)


def module_path(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise ValueError(f"no source for module {name}")
    return Path(spec.origin)


# --------------------------------------------------------------------------- the running torch (2.13)


def runtime_object(path: str) -> object:
    """The object the dotted ``path`` names in this interpreter (importing submodules as needed)."""
    head, *rest = path.split(".")
    obj: object = importlib.import_module(head)
    for i, name in enumerate(rest):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            obj = importlib.import_module(".".join([head, *rest[: i + 1]]))
    return obj


def kind_of(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return "function"
    if inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj):
        return "builtin"
    return "attribute"


def defining_paths(obj: object) -> list[str]:
    """Dotted paths where 2.13 defines ``obj`` (``__module__`` + ``__qualname__``; the C stubs' names)."""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(qualname, str) or "<" in qualname:
        return []
    self_ = getattr(obj, "__self__", None)
    if isinstance(self_, types.ModuleType):
        return [f"{self_.__name__}.{obj.__name__}"]
    qualname = qualname.replace("_VariableFunctionsClass.", "_VariableFunctions.")
    modules = [getattr(obj, "__module__", None), "torch._C"]
    return [f"{m}.{qualname}" for m in dict.fromkeys(modules) if isinstance(m, str)]


def method_names(receivers: Iterable[str] = RECEIVERS) -> dict[str, list[str]]:
    """Method name -> the receiver classes that have it in 2.13 (names ``object`` has left out)."""
    out: dict[str, list[str]] = {}
    for receiver in receivers:
        cls = runtime_object(receiver)
        for name in dir(cls):
            if not hasattr(object, name) and callable(getattr(cls, name, None)):
                out.setdefault(name, []).append(receiver)
    return out


# --------------------------------------------------------------------------- the check


@dataclass
class Row:
    chain: str
    kind: str
    status: str
    sites: list[str]
    keywords: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status == MISSING or (self.status.startswith("keyword ") and "missing" in self.status)

    @property
    def unresolved(self) -> bool:
        return self.status.startswith("unresolved")


@dataclass
class Checker:
    """Checks uses against an old source tree (``old``), with the running torch's sources as reference."""

    old: SourceTree
    new: SourceTree

    def find(self, tree: SourceTree, path: str, obj: object) -> tuple[Found | None, str]:
        """``path`` in ``tree``, else 2.13's defining place; with a note where found by the latter."""
        found = tree.lookup(path)
        if found:
            return found, ""
        for alt in defining_paths(obj):
            found = tree.lookup(alt)
            if found:
                return found, f" (as {alt})"
        return None, ""

    def keywords(self, old: Found, new: Found | None, keywords: Iterable[str]) -> dict[str, list[str]]:
        """The keywords 2.11 lacks though 2.13 takes them ("missing"), that no 2.11 signature shows
        ("unknown"), and that 2.13's signature does not take either ("foreign")."""
        out: dict[str, list[str]] = {"missing": [], "unknown": [], "foreign": []}
        for k in sorted(keywords):
            in_old = self.old.signature_takes(old, k)
            in_new = self.new.signature_takes(new, k) if new else None
            if in_old:
                continue
            if in_new:
                out["missing" if in_old is False else "unknown"].append(k)
            else:
                out["foreign" if in_new is False else "unknown"].append(k)
        return out

    def status(self, old: Found, new: Found | None, keywords: tuple[str, ...], method: bool) -> str:
        """ "ok", or the keywords missing or unchecked (for a method, one 2.13 does not take either is
        taken to be a call on another object)."""
        kw = self.keywords(old, new, keywords)
        if kw["missing"]:
            return f"keyword {', '.join(kw['missing'])} missing"
        unknown = kw["unknown"] + ([] if method else kw["foreign"])
        if unknown:
            return f"unresolved: keyword {', '.join(unknown)} not in a source signature"
        return "ok"

    def check_chain(self, use: Use) -> Row:
        if use.dynamic:
            return Row(use.chain, "dynamic", "unresolved: getattr with a computed name", use.sites)
        try:
            obj = runtime_object(use.chain)
        except (AttributeError, ImportError) as e:
            return Row(use.chain, "?", f"unresolved: not in 2.13 either ({type(e).__name__})", use.sites)
        kind = kind_of(obj)
        old, note = self.find(self.old, use.chain, obj)
        new, _ = self.find(self.new, use.chain, obj)
        keywords = tuple(sorted(use.keywords))
        if old is None:
            status = MISSING if new else "unresolved: not found statically in 2.13's sources either"
            return Row(use.chain, kind, status, use.sites, keywords)
        status = self.status(old, new, keywords, method=False)
        return Row(use.chain, kind, status + note if status == "ok" else status, use.sites, keywords)

    def check_method(self, use: Use, receiver: str) -> Row:
        path = f"{receiver}.{use.chain}"
        old, new = self.old.lookup(path), self.new.lookup(path)
        label = f".{use.chain}() on {receiver.rsplit('.', 1)[-1]}"
        keywords = tuple(sorted(use.keywords))
        if old is None:
            status = MISSING if new else "unresolved: not found statically in 2.13's sources either"
            return Row(label, "method", status, use.sites, keywords)
        return Row(label, "method", self.status(old, new, keywords, method=True), use.sites, keywords)


@functools.cache
def running_tree() -> SourceTree:
    """The running torch's own sources (the reference: what they show is what the code was written for)."""
    import torch

    return SourceTree(Path(torch.__file__).parent.parent)


def check(modules: Iterable[str], old_root: Path, receivers: Iterable[str] = RECEIVERS) -> list[Row]:
    """The table's rows for ``modules`` against the torch sources under ``old_root``."""
    methods = method_names(receivers)
    uses: list[Use] = []
    for name in modules:
        path = module_path(name)
        uses += module_uses(path, name, set(methods))
    checker = Checker(SourceTree(old_root), running_tree())
    rows: list[Row] = []
    for use in merge(uses):
        if use.method:
            rows += [checker.check_method(use, r) for r in methods[use.chain]]
        else:
            rows.append(checker.check_chain(use))
    return rows


# --------------------------------------------------------------------------- the report


def old_version(root: Path) -> str:
    text = (root / "torch" / "version.py").read_text() if (root / "torch" / "version.py").is_file() else ""
    m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
    return m.group(1) if m else "unknown"


def table(rows: list[Row]) -> Iterator[str]:
    width = max([len(r.chain) for r in rows] + [5])
    yield f"{'chain':<{width}}  {'kind':<9}  {'status':<34}  first use (uses)"
    for r in rows:
        kw = f"  [{', '.join(r.keywords)}=]" if r.keywords else ""
        yield f"{r.chain:<{width}}  {r.kind:<9}  {r.status:<34}  {r.sites[0]} ({len(r.sites)}){kw}"


def summary(rows: list[Row], modules: list[str], version: str) -> str:
    chains = [r for r in rows if r.kind != "method"]
    methods = [r for r in rows if r.kind == "method"]
    n_kw = sum(len(r.keywords) for r in chains)
    n_mkw = sum(len(r.keywords) for r in methods)
    failed = sum(r.failed for r in rows)
    unresolved = sum(r.unresolved for r in rows)
    return (
        f"torch {version}: {len(modules)} modules; {len(chains)} chains ({n_kw} keyword names), "
        f"{len(methods)} method checks ({n_mkw} keyword names); ok {len(rows) - failed - unresolved}, "
        f"missing {failed}, unresolved {unresolved}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch-src", type=Path, required=True, help="root holding the old torch/ sources")
    parser.add_argument("--modules", nargs="+", help=f"modules to check (default: what {ENTRY} loads)")
    parser.add_argument("--entry", default=ENTRY, help="module whose import decides the modules checked")
    args = parser.parse_args(argv)
    if not (args.torch_src / "torch" / "__init__.py").is_file():
        parser.error(f"no torch/__init__.py under {args.torch_src}")
    modules = args.modules or study_modules(args.entry)
    rows = check(modules, args.torch_src)
    print("\n".join(table(rows)))
    print("\nmodules: " + " ".join(modules))
    print(summary(rows, modules, old_version(args.torch_src)))
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
