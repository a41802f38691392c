"""Rule templates and expressions, compiled once, run in Jinja2's immutable sandbox.

Event values are only ever *data* in a context: nothing from an event is
compiled, so a summary containing ``{{ 7*7 }}`` prints literally.

Speed: ``Template.render`` builds a fresh context per call, which costs more
than the rendering itself. So a rule's templates share one Scope per (rule,
event), made into a Jinja context only when needed, and simple templates also
get a plain-Python reader (engine/language/fastpath.py) whose answer is used only when
it raises nothing; otherwise the sandboxed template runs and gives the answer
or the error.
"""
from __future__ import annotations

import functools
import hashlib
import json
import operator
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from jinja2 import (
    StrictUndefined,
    TemplateAssertionError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
    pass_eval_context,
)
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import Context, new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, _PassArg

from engine.language.fastpath import expression_reader, template_reader
from engine.names import unknown_name

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def slug(value: Any) -> str:
    """``acme/backend-api`` -> ``acme-backend-api``: anything but letters, digits, ``.``, ``_``, ``-`` becomes ``-``."""
    return _SLUG_UNSAFE.sub("-", str(value))


def decimals(value: Any, places: int = 1) -> str:
    """``5.7999`` -> ``5.8``: a number with a fixed count of decimals."""
    return f"{float(value):.{int(places)}f}"


def digest(value: Any, length: int = 12) -> str:
    """A stable short hash of any JSON value (keys sorted): a key for things with no id of their own."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[: int(length)]


# The filters pagerules adds to Jinja2's built-in ones (upper, lower, round, default, join, ...).
FILTERS: dict[str, Callable[..., Any]] = {"slug": slug, "decimals": decimals, "digest": digest}

# Limits on what one render may build, so no template can hang `process` or eat the memory (issue 11 item 7).
# Far above what a title, key or details value needs; far below a bomb's gigabytes.
MAX_TEXT = 1_000_000  # characters in one value built by an operator or filter, and in a template's output
MAX_INT_BITS = 4096  # bits in the result of `**` (10 ** 1000 fits; 10 ** 100000000 does not)
MAX_RANGE = 1000  # items in one range()
MAX_WORK = 10_000  # range() items plus calls, per render: bounds nested loops
_WIDE = re.compile(r"\d{7,}|%[-#0 +]*\*|\{[^}]*:[^}]*\{")  # a format width >= MAX_TEXT, or one taken from an argument
_budget = threading.local()


def _refuse(message: str) -> None:
    raise SecurityError(message)


def _spend(units: int) -> None:
    left = getattr(_budget, "left", MAX_WORK) - units
    if left < 0:
        _refuse(f"the template does more than {MAX_WORK} loop steps and calls")
    _budget.left = left


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def checked_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would exceed the limits, before it is computed."""
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
            and abs(left) > 1 and max(left.bit_length(), 1) * right > MAX_INT_BITS:
        _refuse(f"{left} ** {right} is too large (more than {MAX_INT_BITS} bits)")
    elif operator == "*" and (_size(left) or _size(right)):
        count = right if _size(left) else left
        if isinstance(count, int) and count * (_size(left) or _size(right)) > MAX_TEXT:
            _refuse(f"repeating a value {count} times makes more than {MAX_TEXT} items")
    elif operator == "%" and isinstance(left, str):
        _check_format(left)


def _check_format(text: str) -> None:
    if _WIDE.search(text):
        _refuse(f"format widths of {MAX_TEXT} or more (or taken from an argument) are not allowed")


def _multiply(left: Any, right: Any) -> Any:
    checked_binop("*", left, right)
    return left * right


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with limits on sizes and work (Jinja's docs: intercepted_binops, call_binop)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        checked_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's names)
        _spend(1)
        if any(_size(a) > MAX_TEXT for a in (*args, *kwargs.values())):
            _refuse(f"a value of more than {MAX_TEXT} items passed to a call")
        wrapped = getattr(getattr(__obj, "__wrapped__", None), "__self__", None)  # the sandbox's str.format wrapper
        if isinstance(wrapped, str):
            _check_format(wrapped)
        return super().call(__context, __obj, *args, **kwargs)


def _capped(func: Callable[..., Any], name: str, position: int, limit: int, shown: str) -> Callable[..., Any]:
    """``func`` refusing an argument (by position or name) above ``limit``: widths, counts."""
    @functools.wraps(func)
    def capped(*args: Any, **kwargs: Any) -> Any:
        value = kwargs.get(name, args[position] if len(args) > position else None)
        if isinstance(value, str):
            value = len(value)
        if isinstance(value, (int, float)) and abs(value) > limit:
            _refuse(f"{shown}: {name} {value} is more than {limit}")
        return func(*args, **kwargs)
    return capped


def _range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        _refuse(f"range() of {len(items)} items; at most {MAX_RANGE}")
    _spend(len(items))
    return items


class _Namespace(Namespace):
    """``namespace()`` whose values are size-checked, so a loop cannot double a text until memory runs out."""

    def __setitem__(self, name: str, value: Any) -> None:
        if _size(value) > MAX_TEXT:
            _refuse(f"namespace value of more than {MAX_TEXT} items")
        super().__setitem__(name, value)


def _format(value: Any, *args: Any, **kwargs: Any) -> Any:
    _check_format(str(value))
    return _JINJA_FORMAT(value, *args, **kwargs)


def _replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
    """Jinja's ``replace``, refused when the result would exceed MAX_TEXT (``s | replace('a', s)`` squares s)."""
    text, old, new = str(value), str(old), str(new)
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    if len(text) + times * (len(new) - len(old)) > MAX_TEXT:
        _refuse(f"replace() would make more than {MAX_TEXT} characters")
    return _JINJA_REPLACE(eval_ctx, value, old, new, count)


def _join_capped(chunks: Iterable[str]) -> str:
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_TEXT:
            _refuse(f"the template's output is longer than {MAX_TEXT} characters")
        out.append(chunk)
    return "".join(out)


ENV = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
ENV.filters.update(FILTERS)
_JINJA_FORMAT, _JINJA_REPLACE = ENV.filters["format"], ENV.filters["replace"]
ENV.filters.update(center=_capped(ENV.filters["center"], "width", 1, MAX_TEXT, "center"),
                   indent=_capped(ENV.filters["indent"], "width", 1, 100, "indent"),
                   batch=_capped(ENV.filters["batch"], "linecount", 1, MAX_RANGE, "batch"),
                   slice=_capped(ENV.filters["slice"], "slices", 1, MAX_RANGE, "slice"),
                   tojson=_capped(ENV.filters["tojson"], "indent", 2, 100, "tojson"), format=_format,
                   replace=pass_eval_context(_replace))
_lipsum = cast(Callable[..., Any], ENV.globals["lipsum"])
for _arg, _position in (("n", 0), ("min", 2), ("max", 3)):
    _lipsum = _capped(_lipsum, _arg, _position, 100 if _arg == "n" else 1000, "lipsum()")
ENV.globals.update(range=_range, namespace=_Namespace, lipsum=_lipsum)
_RESULT = "_pagerules_result"


class TemplateError(Exception):
    """A template or expression that does not compile; ``line`` is within the template text."""

    def __init__(self, message: str, line: int = 1):
        super().__init__(message)
        self.line = line


class Scope:
    """What a rule's templates see for one event: ``event``, ``params`` and the rule's vars.

    The Jinja context is made only when a template needs the sandboxed path.
    """

    __slots__ = ("values", "_context")

    def __init__(self, values: dict[str, Any]):
        self.values = values
        self._context: Context | None = None

    def context(self) -> Context:
        if self._context is None:
            self._context = new_context(ENV, "rule", {}, self.values, False, ENV.globals, None)
        return self._context

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value
        if self._context is not None:
            self._context.vars[name] = value


def make_context(values: Mapping[str, Any]) -> Scope:
    """A fresh scope holding ``values`` (``event``, ``params``); rule vars are added to it."""
    return Scope(dict(values))


@dataclass(frozen=True)
class Compiled:
    """A compiled template (``kind == "template"``) or expression, with the names it reads."""

    source: str
    kind: str
    names: frozenset[str]
    _root: Callable[[Context], Iterable[str]]
    _fast: Callable[[dict[str, Any]], Any] | None = None
    # Reads only ``event`` and ``params``, so its value is the same for every rule of one event.
    pure: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "pure", self.names <= {"event", "params"})

    def render(self, scope: Scope) -> str:
        """Render a template in ``scope``."""
        if self._fast is not None:
            try:
                text = str(self._fast(scope.values))
                if len(text) <= MAX_TEXT:  # else the sandbox refuses it, with its message
                    return text
            except Exception:  # not a plain lookup after all: let Jinja answer, or raise its error
                pass
        _budget.left = MAX_WORK
        return _join_capped(self._root(scope.context()))

    def evaluate(self, scope: Scope) -> Any:
        """Evaluate an expression in ``scope``; the value is not turned into text."""
        if self._fast is not None:
            try:
                return self._fast(scope.values)
            except Exception:  # as in render
                pass
        context = scope.context()
        _budget.left = MAX_WORK
        for _ in self._root(context):
            pass
        return context.vars[_RESULT]


def compile_template(source: str) -> Compiled:
    """Compile a template such as ``{{ event.repo | slug }}-build-{{ event.build_number }}``."""
    try:
        ast = ENV.parse(source)
        code = ENV.from_string(ast)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise TemplateError(_syntax_message(exc), exc.lineno or 1) from None
    _check_names(ast)
    _check_static(ast)
    return Compiled(source, "template", frozenset(meta.find_undeclared_variables(ast)), code.root_render_func,
                    template_reader(ast, ENV.filters, _multiply))


def compile_expression(source: str) -> Compiled:
    """Compile an expression such as ``event.error_rate / event.baseline_error_rate``."""
    try:
        parser = Parser(ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError(f"unexpected '{token.value}' after the expression", token.lineno)
        ast = nodes.Template([nodes.Assign(nodes.Name(_RESULT, "store"), expr, lineno=1)], lineno=1)
        ast.set_environment(ENV)
        code = ENV.from_string(ast)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise TemplateError(_syntax_message(exc), exc.lineno or 1) from None
    _check_names(ast)
    _check_static(ast)
    names = frozenset(meta.find_undeclared_variables(ast)) - {_RESULT}
    return Compiled(source, "expression", names, code.root_render_func, expression_reader(expr, ENV.filters, _multiply))


def attribute_paths(compiled: Compiled, root: str) -> set[tuple[str, ...]]:
    """Constant attribute paths read from ``root``: ``params.build_branches`` -> ("build_branches",)."""
    ast = ENV.parse(compiled.source) if compiled.kind == "template" else \
        ENV.parse("{{ " + compiled.source + " }}")
    found: set[tuple[str, ...]] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        path = _path_from(node, root)
        if path:
            found.add(path)
    return found


def _path_from(node: nodes.Node, root: str) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            parts.append(node.arg.value)
        else:
            return None
        node = node.node
    if isinstance(node, nodes.Name) and node.name == root:
        return tuple(reversed(parts))
    return None


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a template that failed at run time."""
    if isinstance(exc, UndefinedError):
        text = str(exc)
        match = re.match(r"'(.+?)' has no attribute '(.+)'", text)
        if match:
            return f"missing field '{match.group(2)}'"
        return text
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    return f"{type(exc).__name__}: {exc}"


# Attributes every Python value has (``__class__``, ``__init__``, ...): the sandbox refuses them on any value,
# so a template that reads one can only ever fail (README: Templates).
_ALWAYS_REFUSED = frozenset(dir(object))
_STATIC_BINOPS: dict[type[nodes.Node], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add, nodes.Sub: operator.sub, nodes.Mul: operator.mul, nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv, nodes.Mod: operator.mod, nodes.Pow: operator.pow}


class _NotStatic(Exception):
    """A value known only when the template runs."""


def _check_static(ast: nodes.Template) -> None:
    """Refuse at load what the sandbox would refuse on every run: unsafe attributes of values known now
    (``''.__class__``, ``cycler.__init__``) and limits a constant already breaks (``'a' * 10**9``, ``range(99999)``)."""
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.BinExpr, nodes.Call, nodes.Filter)):
        try:
            if isinstance(node, (nodes.Getattr, nodes.Getitem)):
                _check_attribute(node, assigned)
            else:
                _static_value(node, assigned)
        except SecurityError as exc:
            raise TemplateError(f"refused by the sandbox: {exc}", node.lineno or 1) from None
        except Exception:  # noqa: BLE001 - _NotStatic, or an odd constant ({[1]: 2}): the run decides
            pass


def _check_attribute(node: nodes.Getattr | nodes.Getitem, assigned: set[str]) -> None:
    if isinstance(node, nodes.Getattr):
        name = node.attr
    elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        name = node.arg.value
    else:
        return
    try:
        value = _static_value(node.node, assigned)
    except Exception:  # noqa: BLE001 - known only at run time
        if isinstance(node, nodes.Getattr) and name in _ALWAYS_REFUSED:
            _refuse(f"access to attribute {name!r} is unsafe (the sandbox refuses it on every value)")
        return
    if isinstance(node, nodes.Getitem) and isinstance(value, dict):
        return  # the item is tried first, and may be there
    if hasattr(value, name) and not ENV.is_safe_attribute(value, name, getattr(value, name)):
        _refuse(f"access to attribute {name!r} of {type(value).__name__!r} object is unsafe.")


def _static_value(node: nodes.Node, assigned: set[str]) -> Any:
    """The value of ``node`` if it is the same on every run, with the sandbox's limits checked. Else _NotStatic."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in ENV.globals and node.name not in assigned:
        return ENV.globals[node.name]
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [_static_value(item, assigned) for item in node.items]
        return items if isinstance(node, nodes.List) else tuple(items)
    if isinstance(node, nodes.Dict):
        return {_static_value(p.key, assigned): _static_value(p.value, assigned) for p in node.items}
    if isinstance(node, (nodes.Neg, nodes.Pos)):
        sign = operator.neg if isinstance(node, nodes.Neg) else operator.pos
        return _compute(sign, _static_value(node.node, assigned))
    if isinstance(node, nodes.BinExpr) and type(node) in _STATIC_BINOPS:
        left, right = _static_value(node.left, assigned), _static_value(node.right, assigned)
        checked_binop(node.operator, left, right)
        return _compute(_STATIC_BINOPS[type(node)], left, right)
    if isinstance(node, nodes.Concat):
        return "".join(str(_static_value(n, assigned)) for n in node.nodes)
    if isinstance(node, nodes.Call) and _static_value(node.node, assigned) is _range \
            and not (node.kwargs or node.dyn_args or node.dyn_kwargs):
        items = _compute(range, *(_static_value(a, assigned) for a in node.args))
        if len(items) > MAX_RANGE:
            _refuse(f"range() of {len(items)} items; at most {MAX_RANGE}")
        return items
    if isinstance(node, nodes.Filter) and node.node is not None and not (node.dyn_args or node.dyn_kwargs):
        return _static_filter(node, assigned)
    raise _NotStatic


def _static_filter(node: nodes.Filter, assigned: set[str]) -> Any:
    # Jinja itself runs a filter of constants when it compiles; our caps (center, replace, ...) refuse there too.
    func = ENV.filters[node.name]
    if node.node is None:
        raise _NotStatic
    args = [_static_value(node.node, assigned), *(_static_value(a, assigned) for a in node.args)]
    kwargs = {str(k.key): _static_value(k.value, assigned) for k in node.kwargs}
    pass_arg = _PassArg.from_obj(func)
    if pass_arg is _PassArg.eval_context:
        args.insert(0, nodes.EvalContext(ENV))
    elif pass_arg is not None:
        raise _NotStatic
    return _compute(func, *args, **kwargs)


def _compute(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except SecurityError:
        raise
    except Exception:  # a division by zero, a type error: the run-time error says it, with the event
        raise _NotStatic from None


def _check_names(ast: nodes.Template) -> None:
    # Jinja2 defers the check of a filter inside {% if %} to run time; a typo
    # there would only show when that branch runs, so check every one now.
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        kind, known = ("filter", ENV.filters) if isinstance(node, nodes.Filter) else ("test", ENV.tests)
        if node.name not in known:
            raise TemplateError(unknown_name(kind, node.name, known), node.lineno or 1)


def _syntax_message(exc: TemplateSyntaxError | TemplateAssertionError) -> str:
    text = str(exc.message or exc)
    match = re.match(r"No (filter|test) named '(.+?)'", text)
    if match:
        kind, name = match.groups()
        known = ENV.filters if kind == "filter" else ENV.tests
        return unknown_name(kind, name, known)
    return f"template syntax error: {text}"
