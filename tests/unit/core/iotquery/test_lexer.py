"""Tokenizer: token kinds, decoded values, positions and precise errors."""

from __future__ import annotations

import pytest

from wellguard.core.iotquery.lexer import MAX_QUERY_BYTES, TokenKind, tokenize
from wellguard.errors import QueryError


def kinds_and_values(text: str) -> list[tuple[TokenKind, object]]:
    return [(t.kind, t.value) for t in tokenize(text)[:-1]]


def test_condition_tokens_with_positions() -> None:
    tokens = tokenize("tags.site = 'permian'\n  AND x>=1")
    assert [(t.kind, t.text, t.line, t.column) for t in tokens] == [
        (TokenKind.IDENT, "tags", 1, 1),
        (TokenKind.DOT, ".", 1, 5),
        (TokenKind.IDENT, "site", 1, 6),
        (TokenKind.OPERATOR, "=", 1, 11),
        (TokenKind.STRING, "'permian'", 1, 13),
        (TokenKind.KEYWORD, "AND", 2, 3),
        (TokenKind.IDENT, "x", 2, 7),
        (TokenKind.OPERATOR, ">=", 2, 8),
        (TokenKind.NUMBER, "1", 2, 10),
        (TokenKind.EOF, "", 2, 11),
    ]


def test_keywords_are_case_insensitive_and_clause_words_stay_identifiers() -> None:
    assert kinds_and_values("and Or NOT in nin True false NULL select") == [
        (TokenKind.KEYWORD, "AND"),
        (TokenKind.KEYWORD, "OR"),
        (TokenKind.KEYWORD, "NOT"),
        (TokenKind.KEYWORD, "IN"),
        (TokenKind.KEYWORD, "NIN"),
        (TokenKind.KEYWORD, "TRUE"),
        (TokenKind.KEYWORD, "FALSE"),
        (TokenKind.KEYWORD, "NULL"),
        (TokenKind.IDENT, "select"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'plain'", "plain"),
        ('"double"', "double"),
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"single \' inside double"', "single ' inside double"),
        ("'back\\\\slash'", "back\\slash"),
        ("'a\\nb\\tc\\/d'", "a\nb\tc/d"),
        ("'caf\\u00e9'", "café"),
        ("'two\nlines'", "two\nlines"),
        ("''", ""),
    ],
)
def test_string_literals(text: str, value: str) -> None:
    assert kinds_and_values(text) == [(TokenKind.STRING, value)]


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("0", 0), ("1.5", 1.5), ("2e-3", 0.002), ("1E+2", 100.0), ("3.25e2", 325.0)],
)
def test_numbers(text: str, value: float) -> None:
    [(kind, got)] = kinds_and_values(text)
    assert kind is TokenKind.NUMBER
    assert got == value
    assert type(got) is type(value)


def test_minus_is_an_operator_so_the_parser_can_tell_subtraction_from_a_sign() -> None:
    assert kinds_and_values("-5") == [(TokenKind.OPERATOR, "-"), (TokenKind.NUMBER, 5)]
    assert kinds_and_values("a-1") == [
        (TokenKind.IDENT, "a"),
        (TokenKind.OPERATOR, "-"),
        (TokenKind.NUMBER, 1),
    ]


def test_operators() -> None:
    text = "= != <> < > <= >= + - * / %"
    assert [v for _, v in kinds_and_values(text)] == text.split()


def test_dollar_identifiers_may_contain_hyphens_before_letters() -> None:
    assert kinds_and_values("$iothub-enqueuedtime $dt-dataschema $body") == [
        (TokenKind.IDENT, "$iothub-enqueuedtime"),
        (TokenKind.IDENT, "$dt-dataschema"),
        (TokenKind.IDENT, "$body"),
    ]
    assert kinds_and_values("$x-5") == [
        (TokenKind.IDENT, "$x"),
        (TokenKind.OPERATOR, "-"),
        (TokenKind.NUMBER, 5),
    ]


def test_unicode_identifiers() -> None:
    assert kinds_and_values("tags.région") == [
        (TokenKind.IDENT, "tags"),
        (TokenKind.DOT, "."),
        (TokenKind.IDENT, "région"),
    ]


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("tags.site = 'permian", "unterminated string", 1, 13),
        ('x = "abc', "unterminated string", 1, 5),
        ("x = 'abc\\", "unterminated string", 1, 5),
        ("a = 1\nAND b = 'x\ny", "unterminated string", 2, 9),
        ("a = 1 # comment", "unexpected character '#'", 1, 7),
        ("a == 1 AND b ! 2", "unexpected character '!'", 1, 14),
        ("a\n  = ;", "unexpected character ';'", 2, 5),
        ("x = 12abc", "invalid number '12a'", 1, 5),
        ("x = 'a\\qb'", "unknown escape sequence \\q", 1, 7),
        ("x = 'a\\u12'", "\\u must be followed by four hex digits", 1, 7),
        ("x = 1e999", "number is out of range", 1, 5),
        ("x = $ + 1", "'$' must be followed by a name", 1, 5),
        ("x = 'ok'\n\n   'line\nbreak' ^", "unexpected character '^'", 4, 8),
    ],
)
def test_errors_carry_exact_positions(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(QueryError) as caught:
        tokenize(text)
    assert (caught.value.detail, caught.value.line, caught.value.column) == (message, line, column)
    assert str(caught.value) == f"{message} (line {line}, column {column})"


def test_too_many_digits_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="number is too long"):
        tokenize("x = " + "9" * 5000)


def test_text_longer_than_8_kib_is_refused() -> None:
    tokenize("a" * MAX_QUERY_BYTES)
    with pytest.raises(QueryError, match="longer than 8192 bytes"):
        tokenize("a" * (MAX_QUERY_BYTES + 1))
    with pytest.raises(QueryError, match="longer than 8192 bytes"):
        tokenize("é" * (MAX_QUERY_BYTES // 2 + 1))  # counted in UTF-8 bytes
