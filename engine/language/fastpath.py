"""Plain-Python readers for simple templates and expressions, generated from Jinja2's AST.

Jinja2 sets up a context and routes every attribute through the sandbox for
each render; for the templates rules are made of (``{{ event.repo | slug }}``,
``event.error_rate / event.baseline_error_rate``, ``ratio >= 5``) that costs
far more than the work. For such a template this module generates one small
Python function from the parsed template, as fastjsonschema does for schemas.

It accepts only nodes whose meaning in the sandbox is exactly the Python
written here: constants, names, ``a['b']`` (the sandbox tries the item first
too), ``a.b`` as Jinja reads it (the attribute first, then the item: so
``event.items`` of a dict is its method, never its ``items`` field), comparisons, ``and``/``or``/``not``, ``+ - * / //``
(``*`` through the sandbox's size check unless one side is a small number), ``x if c else y``,
list/tuple literals, ``~`` and filters that take no environment or context.
Anything else gets no reader. A reader that raises for any reason (a missing
key, a non-dict, a division by zero) is never the answer: the caller runs the
sandboxed Jinja template instead, which returns the value or raises the error
a user sees. tests/test_properties.py checks the two agree on random events.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.filters import do_default
from jinja2.utils import _PassArg

Reader = Callable[[dict[str, Any]], Any]

_COMPARE = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in", "notin": "not in"}
_BINARY: dict[type[nodes.Node], str] = {nodes.Add: "+", nodes.Sub: "-", nodes.Div: "/", nodes.FloorDiv: "//"}


class _Unsupported(Exception):
    """A node this module does not translate."""


class _JinjaDecides(Exception):
    """``a.b`` where ``a`` has an attribute ``b``: the sandbox answers (the attribute, or its refusal)."""


_DICT_ATTRIBUTES = frozenset(dir(dict))


_MISSING = object()  # what Jinja would make an undefined value of: a dict without the field


def _field_or_missing(obj: Any, name: Any) -> Any:
    """``obj.name`` or ``obj['name']`` under ``| default``: a missing field of a plain dict is _MISSING, as Jinja
    makes it undefined; anything else (a name that is also a dict's attribute, a non-dict) Jinja decides."""
    if type(obj) is dict:
        if name in obj:
            return obj[name]
        if name not in _DICT_ATTRIBUTES:
            return _MISSING
    raise _JinjaDecides(str(name))


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's ``default`` filter, with _MISSING where Jinja has an undefined value."""
    return default_value if value is _MISSING or (boolean and not value) else value


def _item_unless_attribute(obj: Any, name: str) -> Any:
    """Jinja's ``obj.name`` when that is ``obj[name]``: Jinja takes the item only when there is no attribute."""
    if hasattr(obj, name):
        raise _JinjaDecides(name)
    return obj[name]


class _Generator:
    def __init__(self, filters: Mapping[str, Callable[..., Any]], multiply: Callable[[Any, Any], Any]):
        self.filters = filters
        self.multiply = multiply
        self.bound: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"_c{len(self.bound)}"
        self.bound[name] = value
        return name

    def expr(self, node: nodes.Node) -> str:
        if isinstance(node, nodes.Const):
            value = node.value
            if type(value) in (str, int, bool, type(None)) or (type(value) is float and math.isfinite(value)):
                return repr(value)
            return self.bind(value)
        if isinstance(node, nodes.Name) and node.ctx == "load":
            return f"v[{node.name!r}]"
        if isinstance(node, nodes.Getattr):
            return self.getattr(node)
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and type(node.arg.value) in (str, int):
            return f"{self.expr(node.node)}[{node.arg.value!r}]"
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        if isinstance(node, nodes.Compare):
            parts = [self.expr(node.expr)]
            for operand in node.ops:
                if operand.op not in _COMPARE:
                    raise _Unsupported(operand.op)
                parts += [_COMPARE[operand.op], self.expr(operand.expr)]
            return "(" + " ".join(parts) + ")"
        if isinstance(node, (nodes.And, nodes.Or)):
            word = "and" if isinstance(node, nodes.And) else "or"
            return f"({self.expr(node.left)} {word} {self.expr(node.right)})"
        if isinstance(node, nodes.Not):
            return f"(not {self.expr(node.node)})"
        if isinstance(node, nodes.Mul):
            return self.mul(node)
        if isinstance(node, nodes.BinExpr) and type(node) in _BINARY:
            return f"({self.expr(node.left)} {_BINARY[type(node)]} {self.expr(node.right)})"
        if isinstance(node, nodes.Neg):
            return f"(-{self.expr(node.node)})"
        if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
            return f"({self.expr(node.expr1)} if {self.expr(node.test)} else {self.expr(node.expr2)})"
        if isinstance(node, nodes.List):
            return "[" + ", ".join(self.expr(item) for item in node.items) + "]"
        if isinstance(node, nodes.Tuple) and node.ctx == "load":
            return "(" + "".join(self.expr(item) + ", " for item in node.items) + ")"
        if isinstance(node, nodes.Concat):
            return "(" + " + ".join(f"str({self.expr(n)})" for n in node.nodes) + ")"
        raise _Unsupported(type(node).__name__)

    def getattr(self, node: nodes.Getattr) -> str:
        if node.attr.startswith("_"):
            raise _Unsupported(node.attr)  # the sandbox's business, always
        check = self.bind(_item_unless_attribute)
        if node.attr in _DICT_ATTRIBUTES:  # event.items, event.values: a dict's method in Jinja, not its field
            return f"{check}({self.expr(node.node)}, {node.attr!r})"
        # A plain dict has no attribute of any other name, so Jinja takes the item: inline, as fast as it gets.
        held = f"_t{len(self.bound)}"
        self.bound[held] = None  # reserves the name
        # The condition runs first, so it is where the value is held.
        return (f"({held}[{node.attr!r}] if type({held} := {self.expr(node.node)}) is dict "
                f"else {check}({held}, {node.attr!r}))")

    def mul(self, node: nodes.Mul) -> str:
        left, right = self.expr(node.left), self.expr(node.right)
        # `5 * x` stays plain Python; otherwise the sandbox's size check runs ('a' * n could be a gigabyte).
        if any(isinstance(n, nodes.Const) and type(n.value) in (int, float) and abs(n.value) <= 1000
               for n in (node.left, node.right)):
            return f"({left} * {right})"
        return f"{self.bind(self.multiply)}({left}, {right})"

    def filter(self, node: nodes.Filter) -> str:
        func = self.filters.get(node.name)
        if func is None or node.node is None or node.dyn_args or node.dyn_kwargs \
                or _PassArg.from_obj(func) is not None:
            raise _Unsupported(node.name)
        # `event.url | default('')`: a field the event may not have is answered here too, not in the sandbox.
        field = self.missing_field(node.node) if func is do_default else None
        args = [field or self.expr(node.node)] + [self.expr(a) for a in node.args]
        args += [f"{k.key}={self.expr(k.value)}" for k in node.kwargs]
        return f"{self.bind(_default if field else func)}({', '.join(args)})"

    def missing_field(self, node: nodes.Node) -> str | None:
        """For ``a.b`` or ``a['b']`` (``b`` a constant), code giving the field or _MISSING; else None."""
        if isinstance(node, nodes.Getattr) and not node.attr.startswith("_") and node.attr not in _DICT_ATTRIBUTES:
            name: Any = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and type(node.arg.value) in (str, int) and not str(node.arg.value).startswith("_"):
            name = node.arg.value
        else:
            return None
        return f"{self.bind(_field_or_missing)}({self.expr(node.node)}, {name!r})"

    def build(self, body: str) -> Reader:
        namespace = dict(self.bound)
        with warnings.catch_warnings():  # e.g. "str indices must be integers" for ''['x']: it raises, then Jinja runs
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(f"def reader(v):\n    return {body}\n", "<pagerules fast path>", "exec")
        exec(code, namespace)
        return namespace["reader"]  # type: ignore[no-any-return]


def template_reader(ast: nodes.Template, filters: Mapping[str, Callable[..., Any]],
                    multiply: Callable[[Any, Any], Any]) -> Reader | None:
    """A reader returning the template's text, or None if the template is not simple.

    ``multiply`` is the sandbox's size-checked ``*``, used where the operands could be a text and a count."""
    gen = _Generator(filters, multiply)
    pieces: list[str] = []
    try:
        for node in ast.body:
            if not isinstance(node, nodes.Output):
                return None
            for child in node.nodes:
                # Jinja2 writes str(value) for each {{ }} of a template without autoescape.
                pieces.append(repr(child.data) if isinstance(child, nodes.TemplateData) else f"str({gen.expr(child)})")
    except _Unsupported:
        return None
    return gen.build(" + ".join(pieces) if pieces else "''")


def expression_reader(expr: nodes.Node, filters: Mapping[str, Callable[..., Any]],
                      multiply: Callable[[Any, Any], Any]) -> Reader | None:
    """A reader returning the expression's value, or None if it is not simple (see `template_reader`)."""
    gen = _Generator(filters, multiply)
    try:
        return gen.build(gen.expr(expr))
    except _Unsupported:
        return None
