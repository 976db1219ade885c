"""Parser for IoT Hub twin queries and routing/configuration conditions.

Theory of operation: ``tokenize`` first, then one ``_Parser`` walks the tokens, by
recursive descent for query clauses and by precedence climbing for expressions. The
condition grammar, loosest binding first::

    or      := and (OR and)*
    and     := not (AND not)*
    not     := NOT not | compare
    compare := sum [(= | != | <> | < | > | <= | >=) sum | [NOT] IN list | NIN list]
    sum     := product ((+ | -) product)*
    product := unary ((* | / | %) unary)*
    unary   := - unary | + unary | primary
    primary := literal | path | NAME '(' args ')' | '(' or ')'
    path    := NAME ('.' NAME | '[' (STRING | INTEGER) ']')*
    list    := '[' [sum (',' sum)*] ']'        (parentheses also accepted)

So ``NOT a = 1`` is ``NOT (a = 1)`` and comparisons do not chain. A query is::

    SELECT [TOP n] (* | item (',' item)*) FROM devices[.modules | .jobs]
        [WHERE or] [GROUP BY path (',' path)*]
    item := (path | COUNT() | SUM(path) | AVG(path) | MIN(path) | MAX(path)) [AS NAME]

Clause keywords are case-insensitive. Function names are checked against the registry at
parse time. Limits keep hostile text from costing more than it should: 8 KiB of text
(in the lexer), 64 levels of syntactic nesting (parentheses, NOT, unary minus, calls),
checked before Python's own recursion limit could be reached, and a tree depth of 128
nodes, so that evaluating or rendering a parsed tree cannot recurse without bound.
All failures are ``QueryError`` with the line and column of the offending token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from wellguard.errors import QueryError

from .ast import (
    AGGREGATES,
    Aggregate,
    And,
    Arithmetic,
    ArithmeticOp,
    Comparison,
    ComparisonOp,
    Expr,
    FunctionCall,
    InList,
    Literal,
    Not,
    Or,
    Path,
    Position,
    Projection,
    Query,
    QuerySource,
    Selection,
)
from .functions import FUNCTIONS, QueryFunction
from .lexer import Token, TokenKind, tokenize

__all__ = ["MAX_NESTING", "MAX_TREE_DEPTH", "parse_condition", "parse_query"]

MAX_NESTING = 64
MAX_TREE_DEPTH = 128

_COMPARISONS = {op.value: op for op in ComparisonOp} | {"<>": ComparisonOp.NE}
_LITERAL_KEYWORDS = {"TRUE": True, "FALSE": False, "NULL": None}
# Binding strength, loosest first.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY = range(7)
_LOGIC_LEVELS = {"OR": _OR, "AND": _AND}
_OPERATOR_LEVELS = dict.fromkeys(_COMPARISONS, _COMPARE) | dict.fromkeys("+-", _SUM)
_OPERATOR_LEVELS |= dict.fromkeys("*/%", _PRODUCT)
_MATCH_ALL = Literal(True)


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, QueryFunction]) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.functions = functions

    # -- token helpers ----------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not TokenKind.EOF:
            self.index += 1
        return token

    def error(self, message: str, at: Token | Position | None = None) -> QueryError:
        at = at or self.token
        return QueryError(message, line=at.line, column=at.column)

    def unexpected(self, wanted: str) -> QueryError:
        return self.error(f"expected {wanted}, found {self.token.describe()}")

    def at(self, kind: TokenKind, value: str | None = None) -> bool:
        token = self.token
        return token.kind is kind and (value is None or token.value == value)

    def at_word(self, word: str) -> bool:
        token = self.token
        return token.kind is TokenKind.IDENT and str(token.value).upper() == word

    def expect(self, kind: TokenKind, wanted: str | None = None) -> Token:
        if self.token.kind is not kind:
            raise self.unexpected(wanted or kind.value)
        return self.advance()

    def expect_word(self, word: str) -> Token:
        if not self.at_word(word):
            raise self.unexpected(word)
        return self.advance()

    def nested(self, parse: Callable[[], Expr], token: Token) -> Expr:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression is nested more than {MAX_NESTING} levels deep", token)
        try:
            return parse()
        finally:
            self.depth -= 1

    # -- conditions -------------------------------------------------------------------
    # Precedence climbing keeps Python's stack shallow: about five frames per level of
    # nesting, so MAX_NESTING levels stay far below the interpreter's recursion limit.

    def binary_level(self) -> int | None:
        token = self.token
        if token.kind is TokenKind.KEYWORD:
            if token.value in _LOGIC_LEVELS:
                return _LOGIC_LEVELS[str(token.value)]
            if token.value in ("IN", "NIN") or (token.value == "NOT" and self._next_is_in()):
                return _COMPARE
        elif token.kind is TokenKind.OPERATOR:
            return _OPERATOR_LEVELS.get(str(token.value))
        return None

    def _next_is_in(self) -> bool:
        following = self.tokens[min(self.index + 1, len(self.tokens) - 1)]
        return following.kind is TokenKind.KEYWORD and following.value == "IN"

    def parse_expr(self, min_level: int = _OR) -> Expr:
        start = self.token
        left = self.parse_prefix(min_level)
        while (level := self.binary_level()) is not None and level >= min_level:
            if level in (_OR, _AND):
                keyword = str(self.token.value)
                operands = [left]
                while self.at(TokenKind.KEYWORD, keyword):
                    self.advance()
                    operands.append(self.parse_expr(level + 1))
                left = (Or if level == _OR else And)(tuple(operands), _pos(start))
            elif level == _COMPARE:
                left = self.parse_comparison(left, start)
                if self.binary_level() == _COMPARE:
                    raise self.error("comparisons cannot be chained; combine them with AND")
            else:
                op = ArithmeticOp(str(self.advance().value))
                left = Arithmetic(op, left, self.parse_expr(level + 1), _pos(start))
        return left

    def parse_prefix(self, min_level: int) -> Expr:
        token = self.token
        if token.kind is TokenKind.KEYWORD and token.value == "NOT" and min_level <= _NOT:
            self.advance()
            return Not(self.nested(lambda: self.parse_expr(_NOT), token), _pos(token))
        if token.kind is TokenKind.OPERATOR and token.value in ("-", "+"):
            self.advance()
            operand = self.nested(lambda: self.parse_prefix(_UNARY), token)
            if token.value == "+":
                return operand
            if isinstance(operand, Literal) and _is_number(operand.value):
                return Literal(-operand.value, _pos(token))  # type: ignore[operator]
            return Arithmetic(ArithmeticOp.SUB, Literal(0, _pos(token)), operand, _pos(token))
        return self.parse_primary()

    def parse_comparison(self, left: Expr, start: Token) -> Expr:
        token = self.advance()
        if token.kind is TokenKind.OPERATOR:
            op = _COMPARISONS[str(token.value)]
            return Comparison(op, left, self.parse_expr(_SUM), _pos(start))
        if token.value == "NOT":
            self.advance()  # IN
        return InList(left, self.parse_list(), token.value != "IN", _pos(start))

    def parse_list(self) -> tuple[Expr, ...]:
        opener = self.token
        if opener.kind not in (TokenKind.LBRACKET, TokenKind.LPAREN):
            raise self.unexpected("'[' to start the list")
        self.advance()
        closer = TokenKind.RBRACKET if opener.kind is TokenKind.LBRACKET else TokenKind.RPAREN
        items: list[Expr] = []
        if not self.at(closer):
            items.append(self.nested(lambda: self.parse_expr(_SUM), opener))
            while self.at(TokenKind.COMMA):
                self.advance()
                items.append(self.nested(lambda: self.parse_expr(_SUM), opener))
        self.expect(closer, f"',' or {closer.value} in the list")
        return tuple(items)

    def parse_primary(self) -> Expr:
        token = self.token
        if token.kind in (TokenKind.STRING, TokenKind.NUMBER):
            self.advance()
            return Literal(token.value, _pos(token))
        if token.kind is TokenKind.KEYWORD and token.value in _LITERAL_KEYWORDS:
            self.advance()
            return Literal(_LITERAL_KEYWORDS[str(token.value)], _pos(token))
        if token.kind is TokenKind.LPAREN:
            self.advance()
            inner = self.nested(self.parse_expr, token)
            self.expect(TokenKind.RPAREN, "')'")
            return inner
        if token.kind is TokenKind.IDENT:
            if self.tokens[self.index + 1].kind is TokenKind.LPAREN:
                return self.parse_call()
            return self.parse_path()
        raise self.unexpected("a value, a property path or '('")

    def parse_call(self) -> Expr:
        name_token = self.advance()
        name = str(name_token.value).upper()
        if name in AGGREGATES:
            raise self.error(f"aggregate {name}() is only allowed in SELECT", name_token)
        function = self.functions.get(name)
        if function is None:
            raise self.error(f"unknown function {name_token.text}", name_token)
        self.advance()  # '('
        args: list[Expr] = []
        if not self.at(TokenKind.RPAREN):
            args.append(self.nested(self.parse_expr, name_token))
            while self.at(TokenKind.COMMA):
                self.advance()
                args.append(self.nested(self.parse_expr, name_token))
        self.expect(TokenKind.RPAREN, "',' or ')' in the argument list")
        if not function.accepts(len(args)):
            raise self.error(
                f"{name} takes {function.arity()} argument(s), not {len(args)}", name_token
            )
        return FunctionCall(name, tuple(args), _pos(name_token))

    def parse_path(self) -> Path:
        first = self.expect(TokenKind.IDENT, "a property name")
        parts = [str(first.value)]
        while True:
            if self.at(TokenKind.DOT):
                self.advance()
                name = self.token
                if name.kind not in (TokenKind.IDENT, TokenKind.KEYWORD):
                    raise self.unexpected("a property name after '.'")
                parts.append(self.advance().text)
            elif self.at(TokenKind.LBRACKET):
                self.advance()
                key = self.token
                if key.kind is TokenKind.STRING or (
                    key.kind is TokenKind.NUMBER and isinstance(key.value, int)
                ):
                    parts.append(str(self.advance().value))
                else:
                    raise self.unexpected("a quoted property name or an index inside '[ ]'")
                self.expect(TokenKind.RBRACKET, "']'")
            else:
                return Path(tuple(parts), _pos(first))

    # -- queries ----------------------------------------------------------------------

    def parse_query(self) -> Query:
        self.expect_word("SELECT")
        top = None
        if self.at_word("TOP") and self.tokens[self.index + 1].kind is TokenKind.NUMBER:
            self.advance()
            count = self.advance()
            if not isinstance(count.value, int):
                raise self.error("TOP needs a whole number", count)
            top = count.value
        select = self.parse_selection()
        self.expect_word("FROM")
        source = self.parse_source()
        where = None
        if self.at_word("WHERE"):
            self.advance()
            where = self.parse_expr()
        group_by: list[Path] = []
        group_token = self.token
        if self.at_word("GROUP"):
            self.advance()
            self.expect_word("BY")
            group_by.append(self.parse_path())
            while self.at(TokenKind.COMMA):
                self.advance()
                group_by.append(self.parse_path())
        self.expect(TokenKind.EOF, "WHERE, GROUP BY or the end of the query")
        self.check_grouping(select, tuple(group_by), group_token)
        return Query(select, source, where, tuple(group_by), top)

    def parse_selection(self) -> Selection:
        if self.at(TokenKind.OPERATOR, "*"):
            self.advance()
            return Selection()
        projections = [self.parse_projection()]
        while self.at(TokenKind.COMMA):
            self.advance()
            projections.append(self.parse_projection())
        selection = Selection(tuple(projections))
        seen: set[str] = set()
        for name in selection.output_names():
            if name in seen:
                raise self.error(f"two SELECT items are both named {name!r}; use AS")
            seen.add(name)
        return selection

    def parse_projection(self) -> Projection:
        token = self.token
        name = str(token.value).upper()
        expr: Path | Aggregate
        if token.kind is TokenKind.IDENT and self.tokens[self.index + 1].kind is TokenKind.LPAREN:
            if name not in AGGREGATES:
                raise self.error(f"SELECT takes property paths or aggregates, not {name}()")
            self.advance()
            self.advance()
            arg = None if name == "COUNT" else self.parse_path()
            self.expect(TokenKind.RPAREN, "')'")
            expr = Aggregate(name, arg, _pos(token))
        else:
            expr = self.parse_path()
        alias = None
        if self.at_word("AS"):
            self.advance()
            alias = str(self.expect(TokenKind.IDENT, "a name after AS").value)
        return Projection(expr, alias)

    def parse_source(self) -> QuerySource:
        first = self.token
        parts = [str(self.expect(TokenKind.IDENT, "devices").value).lower()]
        while self.at(TokenKind.DOT):
            self.advance()
            parts.append(str(self.expect(TokenKind.IDENT, "modules or jobs").value).lower())
        try:
            return QuerySource(".".join(parts))
        except ValueError:
            raise self.error(
                "FROM must be devices, devices.modules or devices.jobs", first
            ) from None

    def check_grouping(self, select: Selection, group_by: tuple[Path, ...], at: Token) -> None:
        if group_by and select.is_star:
            raise self.error("SELECT * cannot be combined with GROUP BY", at)
        if not (group_by or select.has_aggregates):
            return
        for projection in select.projections:
            expr = projection.expr
            if isinstance(expr, Path) and expr not in group_by:
                raise self.error(
                    f"{'.'.join(expr.parts)} must be an aggregate or appear in GROUP BY",
                    expr.position,
                )


def _pos(token: Token) -> Position:
    return Position(token.line, token.column)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_tree_depth(root: Expr) -> None:
    """Reject trees deeper than ``MAX_TREE_DEPTH`` without recursing."""
    stack: list[tuple[Expr, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise QueryError(
                f"expression is more than {MAX_TREE_DEPTH} operations deep",
                line=node.position.line,
                column=node.position.column,
            )
        match node:
            case And(operands) | Or(operands):
                stack.extend((child, depth + 1) for child in operands)
            case Not(operand):
                stack.append((operand, depth + 1))
            case Comparison(_, left, right) | Arithmetic(_, left, right):
                stack.extend(((left, depth + 1), (right, depth + 1)))
            case InList(value, items):
                stack.extend((child, depth + 1) for child in (value, *items))
            case FunctionCall(_, args):
                stack.extend((child, depth + 1) for child in args)


def parse_condition(text: str, *, functions: Mapping[str, QueryFunction] = FUNCTIONS) -> Expr:
    """Parse a routing or configuration target condition; empty text or ``*`` is ``true``."""
    if not isinstance(text, str):
        raise QueryError("condition must be text")
    parser = _Parser(text, functions)
    if parser.at(TokenKind.EOF) or (
        parser.at(TokenKind.OPERATOR, "*") and parser.tokens[1].kind is TokenKind.EOF
    ):
        return _MATCH_ALL
    expr = parser.parse_expr()
    parser.expect(TokenKind.EOF, "AND, OR or the end of the condition")
    _check_tree_depth(expr)
    return expr


def parse_query(text: str, *, functions: Mapping[str, QueryFunction] = FUNCTIONS) -> Query:
    """Parse a twin query (``SELECT ... FROM devices ...``)."""
    if not isinstance(text, str):
        raise QueryError("query must be text")
    parser = _Parser(text, functions)
    query = parser.parse_query()
    if query.where is not None:
        _check_tree_depth(query.where)
    return query
