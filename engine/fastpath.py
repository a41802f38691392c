"""Plain-Python readers for simple templates and expressions, generated from Jinja2's AST.

Jinja2 sets up a context and routes every attribute through the sandbox for
each render; for the templates rules are made of (``{{ event.repo | slug }}``,
``event.error_rate / event.baseline_error_rate``, ``ratio >= 5``) that costs
far more than the work. For such a template this module generates one small
Python function from the parsed template, as fastjsonschema does for schemas.

It accepts only nodes whose meaning in the sandbox is exactly the Python
written here: constants, names, ``a.b`` / ``a['b']`` (the sandbox tries
``a['b']`` first too), comparisons, ``and``/``or``/``not``, ``+ - * / //``
(the sandbox intercepts no binary operator by default), ``x if c else y``,
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
from jinja2.utils import _PassArg

Reader = Callable[[dict[str, Any]], Any]

_COMPARE = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in", "notin": "not in"}
_BINARY: dict[type[nodes.Node], str] = {nodes.Add: "+", nodes.Sub: "-", nodes.Mul: "*", nodes.Div: "/", nodes.FloorDiv: "//"}


class _Unsupported(Exception):
    """A node this module does not translate."""


class _Generator:
    def __init__(self, filters: Mapping[str, Callable[..., Any]]):
        self.filters = filters
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
            if node.attr.startswith("_"):
                raise _Unsupported(node.attr)  # the sandbox's business, always
            return f"{self.expr(node.node)}[{node.attr!r}]"
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

    def filter(self, node: nodes.Filter) -> str:
        func = self.filters.get(node.name)
        if func is None or node.node is None or node.dyn_args or node.dyn_kwargs \
                or _PassArg.from_obj(func) is not None:
            raise _Unsupported(node.name)
        args = [self.expr(node.node)] + [self.expr(a) for a in node.args]
        args += [f"{k.key}={self.expr(k.value)}" for k in node.kwargs]
        return f"{self.bind(func)}({', '.join(args)})"

    def build(self, body: str) -> Reader:
        namespace = dict(self.bound)
        with warnings.catch_warnings():  # e.g. "str indices must be integers" for ''['x']: it raises, then Jinja runs
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(f"def reader(v):\n    return {body}\n", "<pagerules fast path>", "exec")
        exec(code, namespace)
        return namespace["reader"]  # type: ignore[no-any-return]


def template_reader(ast: nodes.Template, filters: Mapping[str, Callable[..., Any]]) -> Reader | None:
    """A reader returning the template's text, or None if the template is not simple."""
    gen = _Generator(filters)
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


def expression_reader(expr: nodes.Node, filters: Mapping[str, Callable[..., Any]]) -> Reader | None:
    """A reader returning the expression's value, or None if it is not simple."""
    gen = _Generator(filters)
    try:
        return gen.build(gen.expr(expr))
    except _Unsupported:
        return None
