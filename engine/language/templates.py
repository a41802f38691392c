"""Rule templates and expressions, compiled once, run in Jinja2's immutable sandbox.

Event values are only ever *data* in a context: nothing from an event is
compiled, so a summary containing ``{{ 7*7 }}`` prints literally.

Speed: ``Template.render`` builds a fresh context per call, which costs more
than the rendering itself. So a rule's templates share one Scope per (rule,
event), made into a Jinja context only when needed, and simple templates also
get a plain-Python reader (engine/language/fastpath.py) whose answer is used only when
it raises nothing; otherwise the sandboxed template runs and gives the answer
or the error.

The sandbox, its limits and the filter registry are in engine/language/sandbox.py;
what is refused at load because it would fail on every run, in engine/language/static.py.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import (
    TemplateAssertionError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import Context, new_context

from engine.language.fastpath import expression_reader, template_reader
from engine.language.sandbox import (
    ENV,
    FILTERS,
    MAX_TEXT,
    decimals,
    digest,
    join_capped,
    multiply,
    reset_budget,
    slug,
)
from engine.language.static import static_refusal
from engine.names import unknown_name

# The sandbox's names callers have always imported from here.
UNFOLDED = ENV.overlay(optimized=False)  # the same sandbox, compiling without constant folding
__all__ = ["ENV", "FILTERS", "MAX_TEXT", "Compiled", "Scope", "TemplateError", "attribute_paths",
           "compile_expression", "compile_template", "decimals", "digest", "describe_failure", "make_context", "slug"]

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
    _ast: nodes.Template | None = field(default=None, compare=False, repr=False)  # for attribute_paths

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
        return self.render_sandboxed(scope)

    def render_sandboxed(self, scope: Scope) -> str:
        """The sandbox's rendering alone: what ``render`` gives when the fast reader has no answer.
        Evaluation calls it after trying ``_fast`` itself (one call less per template of every match)."""
        reset_budget()
        return join_capped(self._root(scope.context()))

    def evaluate(self, scope: Scope) -> Any:
        """Evaluate an expression in ``scope``; the value is not turned into text."""
        if self._fast is not None:
            try:
                return self._fast(scope.values)
            except Exception:  # as in render
                pass
        return self.evaluate_sandboxed(scope)

    def evaluate_sandboxed(self, scope: Scope) -> Any:
        """The sandbox's value alone (see ``render_sandboxed``)."""
        context = scope.context()
        reset_budget()
        for _ in self._root(context):
            pass
        return context.vars[_RESULT]


def compile_template(source: str) -> Compiled:
    """Compile a template such as ``{{ event.repo | slug }}-build-{{ event.build_number }}``."""
    try:
        ast = ENV.parse(source)
        _check_names(ast)
        reader = template_reader(ast, ENV.filters, multiply)
        root = _root(ast, reader is not None)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise TemplateError(_syntax_message(exc), exc.lineno or 1) from None
    _check_refusal(ast)
    return Compiled(source, "template", _names(ast), root, reader, _ast=ast)


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
        _check_names(ast)
        reader = expression_reader(expr, ENV.filters, multiply)
        root = _root(ast, reader is not None)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise TemplateError(_syntax_message(exc), exc.lineno or 1) from None
    _check_refusal(ast)
    names = _names(ast) - {_RESULT}
    return Compiled(source, "expression", names, root, reader, _ast=ast)


def _root(ast: nodes.Template, has_reader: bool) -> Callable[[Context], Iterable[str]]:
    """The sandbox's render function: compiled now, or on first use when a fast reader answers first."""
    return _lazy_root(ast) if has_reader else _render_func(ast)


def _render_func(ast: nodes.Template) -> Callable[[Context], Iterable[str]]:
    """Jinja's compiled render function. Jinja folds constant parts while compiling, and a constant that
    folds to an undefined value (``'' | first``) makes its compiler raise UndefinedError; such a template
    is compiled unfolded instead, so it fails when it runs, as every other form of it does, never at load
    with a traceback (found by tests/test_properties.py)."""
    try:
        return (ast.environment or ENV).from_string(ast).root_render_func
    except UndefinedError:
        ast.set_environment(UNFOLDED)
        return UNFOLDED.from_string(ast).root_render_func


def _names(ast: nodes.Template) -> frozenset[str]:
    """The variables a template reads; unfolded when folding a constant fails (see ``_render_func``)."""
    try:
        return frozenset(meta.find_undeclared_variables(ast))
    except UndefinedError:
        ast.set_environment(UNFOLDED)
        tracker = _UnfoldedTracker(UNFOLDED)
        tracker.visit(ast)
        return frozenset(tracker.undeclared_identifiers)


class _UnfoldedTracker(meta.TrackingCodeGenerator):
    """jinja2.meta's tracker, without the constant folding it always does."""

    def __init__(self, environment: Any) -> None:
        CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared_identifiers: set[str] = set()


def _lazy_root(ast: nodes.Template) -> Callable[[Context], Iterable[str]]:
    """Jinja's compiled template, made the first time the sandbox must answer (a fast reader raised).

    Only for a template with a fast reader: it is made of expressions alone, whose one compile-time
    failure (an unknown filter or test) `_check_names` has already reported at load. Compiling a
    template's Python costs more than the rest of loading its rule, and most never need it."""
    made: list[Callable[[Context], Iterable[str]]] = []

    def root(context: Context) -> Iterable[str]:
        if not made:
            made.append(_render_func(ast))
        return made[0](context)
    return root


def attribute_paths(compiled: Compiled, root: str) -> set[tuple[str, ...]]:
    """Constant attribute paths read from ``root``: ``params.build_branches`` -> ("build_branches",)."""
    ast = compiled._ast  # the tree it was compiled from: parsing again costs more than the rest of the check
    if ast is None:
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


def _check_refusal(ast: nodes.Template) -> None:
    refusal = static_refusal(ast)
    if refusal is not None:
        raise TemplateError(*refusal)


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
