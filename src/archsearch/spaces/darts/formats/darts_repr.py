"""The original DARTS repositories' form: the repr of their `Genotype` namedtuple.

quark0/darts, PC-DARTS and MiLeNAS log `Genotype(normal=[('sep_conv_3x3', 0), ...],
normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))` and keep hand-written ones as
`NAME = Genotype(...)` with list concats in genotypes.py. The text is parsed with `ast` and only
literals, lists, tuples and `range(...)` are accepted: nothing in it is ever evaluated.
"""
from __future__ import annotations

import ast
import re
import textwrap

from archsearch.spaces.darts.formats.base import FIELDS, FORMATS, BadContent, GenotypeFormat, NotThisFormat
from archsearch.spaces.darts.genotype import Genotype

CALL = re.compile(r"\bGenotype\s*\(")
MAX_RANGE = 64  # concats are a handful of states; a huge range() must not allocate a huge list


def _brief(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def _statement(text: str) -> ast.stmt:
    """The single statement of the text; a log line is cut to its `Genotype(...)` first."""
    text = textwrap.dedent(text).strip()
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        match = CALL.search(text)
        end = text.rfind(")")
        if not match or end < match.start():
            raise NotThisFormat(f"not Python: {e.msg} (line {e.lineno})") from None
        try:  # e.g. "06/21 10:12:13 PM genotype = Genotype(...)" from a search log
            tree = ast.parse(text[match.start():end + 1])
        except SyntaxError as e2:
            raise NotThisFormat(f"not Python: {e2.msg} (line {e2.lineno})") from None
    except ValueError as e:  # NUL bytes
        raise NotThisFormat(f"not Python: {e}") from None
    if len(tree.body) != 1:
        raise NotThisFormat(f"expected one Genotype(...) expression, found {len(tree.body)} statements")
    return tree.body[0]


def _call(stmt: ast.stmt) -> ast.Call:
    """`Genotype(...)`, `genotypes.Genotype(...)` or `NAME = Genotype(...)`."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        value = stmt.value
    elif isinstance(stmt, ast.Expr):
        value = stmt.value
    else:
        raise NotThisFormat(f"expected a Genotype(...) expression, got {_brief(stmt)}")
    func = value.func if isinstance(value, ast.Call) else None
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name != "Genotype":
        raise NotThisFormat(f"expected a Genotype(...) expression, got {_brief(value)}")
    return value


def _literal(node: ast.AST, where: str):
    """Strings, numbers, lists, tuples and range(...) of integers; anything else is refused unevaluated."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)) and not any(isinstance(e, ast.Starred) for e in node.elts):
        return [_literal(e, f"{where}[{k}]") for k, e in enumerate(node.elts)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 3:
        args = [_literal(a, where) for a in node.args]
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args) or args[2:] == [0]:
            raise BadContent(f"{where}: range() takes integers and a non-zero step, got {_brief(node)}")
        states = range(*args)
        if states.stop - states.start > MAX_RANGE * abs(states.step):  # len() overflows on huge ranges
            raise BadContent(f"{where}: {_brief(node)} has more than {MAX_RANGE} states")
        return list(states)
    raise BadContent(f"{where}: only strings, integers, lists, tuples and range(...) are read, got {_brief(node)}")


@FORMATS.register("darts")
class DartsRepr(GenotypeFormat):
    title = "a DARTS Genotype(...) repr"
    suffixes = (".py", ".txt", ".log")

    def sniff(self, text: str) -> int:
        return 2 if CALL.search(text) else 0

    def read(self, text: str) -> dict:
        call = _call(_statement(text))
        if len(call.args) > len(FIELDS) or any(isinstance(a, ast.Starred) for a in call.args):
            raise BadContent(f"Genotype() takes the {len(FIELDS)} fields {', '.join(FIELDS)}")
        nodes = dict(zip(FIELDS, call.args))
        for kw in call.keywords:
            if kw.arg not in FIELDS:
                raise BadContent(f"Genotype() has no field {kw.arg or '**'}; it takes {', '.join(FIELDS)}")
            if kw.arg in nodes:
                raise BadContent(f"Genotype() got {kw.arg} twice")
            nodes[kw.arg] = kw.value
        return {name: _literal(node, name) for name, node in nodes.items()}

    def write(self, genotype: Genotype) -> str:
        """What the originals print for a searched cell: their namedtuple's repr."""
        fields = []
        for name in ("normal", "reduce"):
            cell = ", ".join(f"({op!r}, {src})" for op, src in getattr(genotype, name))
            fields += [f"{name}=[{cell}]", f"{name}_concat={_concat(getattr(genotype, name + '_concat'))}"]
        return f"Genotype({', '.join(fields)})\n"


def _concat(states: tuple[int, ...]) -> str:
    """range(a, b) for consecutive states, as the search code builds them; a list otherwise."""
    if len(states) > 1 and list(states) == list(range(states[0], states[-1] + 1)):
        return f"range({states[0]}, {states[-1] + 1})"
    return repr(list(states))
