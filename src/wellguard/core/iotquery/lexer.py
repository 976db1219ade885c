"""Tokenizer for IoT Hub query and condition text.

Theory of operation: ``tokenize`` scans the whole text once (it is at most 8 KiB) and
returns a list of ``Token`` ending in an ``EOF`` token, each with the 1-based line and
column where it starts. Anything it cannot read raises ``QueryError`` at the exact
position of the offending character (for an unterminated string: its opening quote).

Words are ``IDENT`` tokens, except the reserved words of the condition grammar
(``AND OR NOT IN NIN TRUE FALSE NULL``, any case), which are ``KEYWORD`` tokens whose
``value`` is upper-case. Clause words (``SELECT FROM WHERE GROUP BY AS TOP``) stay
identifiers and are recognised by position, so they remain usable as property names.

An identifier starting with ``$`` may contain ``-`` followed by a letter, because routing
names system properties ``$iothub-enqueuedtime`` and ``$dt-dataschema``; write
``$x - 1`` with spaces to subtract. Strings take single or double quotes, JSON escapes
(``\\' \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX``) and a doubled quote (``'it''s'``). Numbers
are unsigned here (``12``, ``1.5``, ``2e-3``); the parser folds a leading minus.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from wellguard.errors import QueryError

__all__ = ["IDENTIFIER", "KEYWORDS", "MAX_QUERY_BYTES", "Token", "TokenKind", "tokenize"]

MAX_QUERY_BYTES = 8192

KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "NIN", "TRUE", "FALSE", "NULL"})

IDENTIFIER = re.compile(r"[^\W\d]\w*|\$\w+(?:-[^\W\d]\w*)*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPACE = re.compile(r"\s+")
_OPERATORS = ("<=", ">=", "<>", "!=", "=", "<", ">", "+", "-", "*", "/", "%")
_PUNCTUATION = {"(": "LPAREN", ")": "RPAREN", "[": "LBRACKET", "]": "RBRACKET"}
_PUNCTUATION |= {",": "COMMA", ".": "DOT"}
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n"}
_ESCAPES |= {"r": "\r", "t": "\t"}
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


class TokenKind(StrEnum):
    """What a token is."""

    IDENT = "identifier"
    KEYWORD = "keyword"
    STRING = "string"
    NUMBER = "number"
    OPERATOR = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    LBRACKET = "'['"
    RBRACKET = "']'"
    COMMA = "','"
    DOT = "'.'"
    EOF = "end of text"


_WORDY = frozenset(
    {TokenKind.IDENT, TokenKind.KEYWORD, TokenKind.STRING, TokenKind.NUMBER, TokenKind.OPERATOR}
)


@dataclass(frozen=True)
class Token:
    """One token: its kind, source text, decoded value and start position."""

    kind: TokenKind
    text: str
    value: str | int | float
    line: int
    column: int

    def describe(self) -> str:
        """How to name this token in an error message."""
        if self.kind in _WORDY:
            return f"{self.kind.value} {self.text!r}"
        return self.kind.value


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def column_of(self, pos: int) -> int:
        return pos - self.line_start + 1

    def error(self, message: str, pos: int) -> QueryError:
        # Errors inside a multi-line string must report that string's line, so recount.
        line = self.text.count("\n", 0, pos) + 1
        start = self.text.rfind("\n", 0, pos) + 1
        return QueryError(message, line=line, column=pos - start + 1)

    def advance_to(self, end: int) -> None:
        newlines = self.text.count("\n", self.pos, end)
        if newlines:
            self.line += newlines
            self.line_start = self.text.rfind("\n", self.pos, end) + 1
        self.pos = end

    def tokens(self) -> list[Token]:
        result: list[Token] = []
        text = self.text
        while True:
            space = _SPACE.match(text, self.pos)
            if space:
                self.advance_to(space.end())
            if self.pos >= len(text):
                result.append(Token(TokenKind.EOF, "", "", self.line, self.column_of(self.pos)))
                return result
            result.append(self.token())

    def token(self) -> Token:
        text, start = self.text, self.pos
        line, column = self.line, self.column_of(start)
        char = text[start]
        kind: TokenKind
        value: str | int | float
        if char in "'\"":
            value, end = self.string(start)
            kind = TokenKind.STRING
        elif "0" <= char <= "9":
            value, end = self.number(start)
            kind = TokenKind.NUMBER
        elif (ident := IDENTIFIER.match(text, start)) is not None:
            end = ident.end()
            word = ident.group()
            if word.upper() in KEYWORDS:
                kind, value = TokenKind.KEYWORD, word.upper()
            else:
                kind, value = TokenKind.IDENT, word
        elif char in _PUNCTUATION:
            kind, value, end = TokenKind[_PUNCTUATION[char]], char, start + 1
        else:
            operator = next((op for op in _OPERATORS if text.startswith(op, start)), None)
            if operator is None:
                if char == "$":
                    raise self.error("'$' must be followed by a name", start)
                raise self.error(f"unexpected character {char!r}", start)
            kind, value, end = TokenKind.OPERATOR, operator, start + len(operator)
        self.advance_to(end)
        return Token(kind, text[start:end], value, line, column)

    def string(self, start: int) -> tuple[str, int]:
        text = self.text
        quote = text[start]
        pieces: list[str] = []
        pos = start + 1
        while True:
            if pos >= len(text):
                raise self.error("unterminated string", start)
            char = text[pos]
            if char == quote:
                if text.startswith(quote, pos + 1):  # '' inside '...' is one quote
                    pieces.append(quote)
                    pos += 2
                    continue
                return "".join(pieces), pos + 1
            if char != "\\":
                pieces.append(char)
                pos += 1
                continue
            escape = text[pos + 1 : pos + 2]
            if escape == "u":
                digits = _HEX4.match(text, pos + 2)
                if digits is None:
                    raise self.error("\\u must be followed by four hex digits", pos)
                pieces.append(chr(int(digits.group(), 16)))
                pos += 6
            elif not escape:
                raise self.error("unterminated string", start)
            elif escape in _ESCAPES:
                pieces.append(_ESCAPES[escape])
                pos += 2
            else:
                raise self.error(f"unknown escape sequence \\{escape}", pos)

    def number(self, start: int) -> tuple[int | float, int]:
        match = _NUMBER.match(self.text, start)
        assert match is not None  # the caller saw a digit
        end = match.end()
        if end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "_$"):
            raise self.error(f"invalid number {self.text[start : end + 1]!r}", start)
        literal = match.group()
        try:
            value: int | float = int(literal) if literal.isdigit() else float(literal)
        except ValueError:  # more digits than int() accepts
            raise self.error("number is too long", start) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error("number is out of range", start)
        return value, end


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens ending with ``EOF``; raise ``QueryError`` on bad input."""
    if len(text) > MAX_QUERY_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES:
        raise QueryError(f"query text is longer than {MAX_QUERY_BYTES} bytes")
    return _Scanner(text).tokens()
