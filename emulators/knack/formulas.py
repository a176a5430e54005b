"""Knack formula fields the emulator can recompute: arithmetic equations and text concatenations.

Only ``{field_N}`` references combined with + - * / (equations) or plain text (concatenations) are
evaluated; formulas calling Knack functions keep the value they were loaded with.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from emulators.knack.fields import BLANK, Pair, numeric_value, plain_text

_FIELD_REF = re.compile(r"\{(field_\d+)\}")
_FUNCTION_CALL = re.compile(r"[A-Za-z_]\w*\s*\(")
_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST, pairs: dict[str, Pair]) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, pairs)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return numeric_value(pairs.get(node.id))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left, pairs), _evaluate(node.right, pairs))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand, pairs))
    raise ValueError("unsupported formula")


@functools.lru_cache(maxsize=256)
def _compiled(formula: str) -> ast.Expression | None:
    """The formula parsed once, ``{field_N}`` references turned into names (None: not arithmetic)."""
    try:
        return ast.parse(_FIELD_REF.sub(lambda m: m.group(1), formula), mode="eval")
    except SyntaxError:
        return None


def equation(field: dict, pairs: dict[str, Pair]) -> Pair | None:
    """Evaluate an arithmetic ``{field_N}`` formula; None when the formula is beyond this emulator."""
    formula = str((field.get("format") or {}).get("equation") or "")
    if not formula or _FUNCTION_CALL.search(formula):
        return None
    tree = _compiled(formula)
    if tree is None:
        return BLANK
    try:
        result = _evaluate(tree, pairs)
    except (ValueError, ZeroDivisionError):
        return BLANK
    raw = math.trunc(result * 1e8) / 1e8  # Knack truncates the raw value to 8 decimals
    raw = int(raw) if raw.is_integer() else raw
    return Pair(round(result), raw)


def concatenation(field: dict, pairs: dict[str, Pair]) -> Pair | None:
    """Fill a text formula's ``{field_N}`` references; None when it calls functions we do not emulate."""
    formula = str((field.get("format") or {}).get("equation") or "")
    if not formula or _FUNCTION_CALL.search(formula):
        return None
    text = _FIELD_REF.sub(lambda m: plain_text(pairs[m.group(1)].formatted) if m.group(1) in pairs else "",
                          formula)
    return Pair(text, text) if text else BLANK


