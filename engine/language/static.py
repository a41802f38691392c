"""Load-time checks of a parsed template: what the sandbox would refuse on every run is refused now.

A template that reads ``''.__class__`` or builds ``'a' * 10**9`` from constants can
only ever fail, so it is a rule problem at load, with its line, not an error on
every event.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.utils import _PassArg

from engine.language.sandbox import ENV, MAX_RANGE, bounded_range, checked_binop, refuse

# Attributes every Python value has (``__class__``, ``__init__``, ...): the sandbox refuses them on any value,
# so a template that reads one can only ever fail (README: Templates).
_ALWAYS_REFUSED = frozenset(dir(object))
_STATIC_BINOPS: dict[type[nodes.Node], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add, nodes.Sub: operator.sub, nodes.Mul: operator.mul, nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv, nodes.Mod: operator.mod, nodes.Pow: operator.pow}


class _NotStatic(Exception):
    """A value known only when the template runs."""


def static_refusal(ast: nodes.Template) -> tuple[str, int] | None:
    """(message, line) of the first thing the sandbox would refuse on every run, else None: unsafe attributes
    of values known now (``''.__class__``, ``cycler.__init__``) and limits a constant already breaks
    (``'a' * 10**9``, ``range(99999)``)."""
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.BinExpr, nodes.Call, nodes.Filter)):
        try:
            if isinstance(node, (nodes.Getattr, nodes.Getitem)):
                _check_attribute(node, assigned)
            else:
                _static_value(node, assigned)
        except SecurityError as exc:
            return f"refused by the sandbox: {exc}", node.lineno or 1
        except Exception:  # noqa: BLE001 - _NotStatic, or an odd constant ({[1]: 2}): the run decides
            pass
    return None


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
            refuse(f"access to attribute {name!r} is unsafe (the sandbox refuses it on every value)")
        return
    if isinstance(node, nodes.Getitem) and isinstance(value, dict):
        return  # the item is tried first, and may be there
    if hasattr(value, name) and not ENV.is_safe_attribute(value, name, getattr(value, name)):
        refuse(f"access to attribute {name!r} of {type(value).__name__!r} object is unsafe.")


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
    if isinstance(node, nodes.Call) and _static_value(node.node, assigned) is bounded_range \
            and not (node.kwargs or node.dyn_args or node.dyn_kwargs):
        items = _compute(range, *(_static_value(a, assigned) for a in node.args))
        if len(items) > MAX_RANGE:
            refuse(f"range() of {len(items)} items; at most {MAX_RANGE}")
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
