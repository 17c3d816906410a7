"""Full-text search the way SQLite's FTS5 does it, for PostgreSQL: the same tokens (FTS5's ``unicode61`` tokenizer
with ``remove_diacritics 2``) and the same query syntax, so that `search` finds the same captures on both engines.

PostgreSQL's own parser would not do: in a C-locale database it keeps every non-ASCII character inside words
("don’t" is one word, "—" is a word), and it reads URLs and e-mail addresses as single tokens. So the documents'
``tsvector`` and the queries' ``tsquery`` are written here, as literals, from tokens made as FTS5 makes them.

Queries (what `archiver search` documents): words (all must match), "phrases", ``OR``, ``AND``, ``NOT``, prefix
``word*`` and ``"phrase"*``, ``a + b`` (a phrase), parentheses. FTS5's precedence: juxtaposition binds tightest,
then NOT, then AND, then OR; NOT is binary (``a NOT b``). Column filters (``title:``), ``NEAR(...)`` and ``^`` are
not supported here: they raise ``QuerySyntax``, and the caller then searches the words literally, as it does for
any query FTS5 itself cannot parse.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

# tsvector limits: positions above 16383 are not kept, at most 256 positions per lexeme, under 1 MB in all.
MAX_POSITION = 16383
MAX_POSITIONS = 256
MAX_BYTES = 900_000
MAX_LEXEME_BYTES = 2000


class QuerySyntax(ValueError):
    """A query this module cannot turn into a tsquery (FTS5 would not parse it either, or it uses a feature that
    has no tsquery equivalent)."""


def _fold(char: str) -> str:
    """One character as unicode61 (remove_diacritics 2) indexes it: lower case; a Latin letter without its
    diacritics; a combining diacritic dropped."""
    if "\u0300" <= char <= "\u036f":
        return ""
    low = char.lower()
    if low.isascii():
        return low
    out = []
    for c in low:
        if "\u0300" <= c <= "\u036f":
            continue
        base = unicodedata.normalize("NFD", c)
        if base[0].isascii() and base[0].isalpha() and all(unicodedata.category(m) == "Mn" for m in base[1:]):
            out.append(base[0])
        else:
            out.append(c)
    return "".join(out)


def _is_token_char(char: str) -> bool:
    # unicode61's default categories (L*, N*, Co), and combining marks, which remove_diacritics then drops.
    category = unicodedata.category(char)
    return category[0] in "LN" or category in ("Co", "Mn")


def tokens(text: str | None) -> list[str]:
    """The tokens FTS5's unicode61 tokenizer (remove_diacritics 2) makes of ``text``, in order."""
    out: list[str] = []
    if not text:
        return out
    current: list[str] = []
    for char in text:
        if char.isascii():
            if char.isalnum():
                current.append(char.lower())
                continue
        elif _is_token_char(char):
            current.append(_fold(char))
            continue
        if current:
            word = "".join(current)
            if word:
                out.append(word)
            current = []
    if current and "".join(current):
        out.append("".join(current))
    return out


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector(title: str | None, text: str | None) -> str:
    """A tsvector literal of a capture's title and text: positions as FTS5 counts them, the text after a gap so
    that no phrase spans the two (FTS5 matches a phrase within one column)."""
    positions: dict[str, list[int]] = {}
    size = 0
    position = 0
    for column in (title, text):
        for token in tokens(column):
            position += 1
            if len(token.encode()) > MAX_LEXEME_BYTES:
                continue
            found = positions.get(token)
            if found is None:
                size += len(token.encode()) + 8
                if size > MAX_BYTES:
                    break
                positions[token] = found = []
            if len(found) < MAX_POSITIONS and (position <= MAX_POSITION or not found):
                found.append(min(position, MAX_POSITION))
                size += 2
        position += 1
    return " ".join(f"{_quote(lexeme)}:{','.join(map(str, places))}" for lexeme, places in positions.items())


# ---- queries ----------------------------------------------------------------------------------------------------

_BAREWORD = re.compile(r"[A-Za-z0-9_\x1a\x80-\U0010ffff]+")


@dataclass
class _Token:
    kind: str          # word | string | ( | ) | + | * | op
    text: str


def _lex(query: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
        elif char == '"':
            j, text = i + 1, []
            while True:
                if j >= len(query):
                    raise QuerySyntax("unterminated string")
                if query[j] == '"':
                    if query[j + 1:j + 2] == '"':
                        text.append('"')
                        j += 2
                        continue
                    break
                text.append(query[j])
                j += 1
            out.append(_Token("string", "".join(text)))
            i = j + 1
        elif char in "()+*":
            out.append(_Token(char, char))
            i += 1
        else:
            match = _BAREWORD.match(query, i)
            if not match:
                raise QuerySyntax(f"syntax error near {char!r}")
            word = match.group()
            i = match.end()
            if word in ("AND", "OR", "NOT"):
                out.append(_Token("op", word))
            elif word == "NEAR" and query[i:].lstrip().startswith("("):
                raise QuerySyntax("NEAR() is not supported")
            else:
                out.append(_Token("word", word))
    return out


class _Parser:
    """FTS5's grammar (fts5parse.y), less column filters, NEAR and ^. Nodes are tsquery text, or None for a
    phrase with no tokens, which FTS5 leaves out of the expression around it."""

    def __init__(self, query: str):
        self.items = _lex(query)
        self.at = 0

    def peek(self, kind: str, text: str | None = None) -> bool:
        if self.at >= len(self.items):
            return False
        item = self.items[self.at]
        return item.kind == kind and (text is None or item.text == text)

    def take(self, kind: str, text: str | None = None) -> _Token:
        if not self.peek(kind, text):
            found = self.items[self.at].text if self.at < len(self.items) else "end of query"
            raise QuerySyntax(f"syntax error near {found!r}")
        self.at += 1
        return self.items[self.at - 1]

    def parse(self) -> str | None:
        node = self.or_expr()
        if self.at != len(self.items):
            raise QuerySyntax(f"syntax error near {self.items[self.at].text!r}")
        return node

    def or_expr(self) -> str | None:
        return self._chain("OR", "|", self.and_expr)

    def and_expr(self) -> str | None:
        return self._chain("AND", "&", self.not_expr)

    def _chain(self, word: str, op: str, operand: Callable[[], str | None]) -> str | None:
        """``operand (word operand)*``, left to right."""
        node = operand()
        while self.peek("op", word):
            self.at += 1
            node = _join(node, op, operand())
        return node

    def not_expr(self) -> str | None:
        node = self.unit()
        while self.peek("op", "NOT"):
            self.at += 1
            right = self.unit()
            if node is not None and right is not None:
                node = f"({node} & !{right})"
        return node

    def unit(self) -> str | None:
        if self.peek("("):
            self.at += 1
            node = self.or_expr()
            self.take(")")
            return node
        node = self.phrase()
        while self.peek("word") or self.peek("string"):
            node = _join(node, "&", self.phrase())
        return node

    def phrase(self) -> str | None:
        words: list[str] = []
        while True:
            if self.peek("word"):
                words += tokens(self.take("word").text)
            else:
                words += tokens(self.take("string").text)
            if not self.peek("+"):
                break
            self.at += 1
        prefix = self.peek("*")
        if prefix:
            self.at += 1
        if not words:
            return None
        lexemes = [_quote(w) for w in words]
        if prefix:
            lexemes[-1] += ":*"
        return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"


def _join(left: str | None, op: str, right: str | None) -> str | None:
    if left is None:
        return right
    if right is None:
        return left
    return f"({left} {op} {right})"


def tsquery(query: str) -> str | None:
    """The tsquery literal for an FTS5 ``query``; None when it holds no token (it then matches nothing).
    Raises QuerySyntax."""
    return _Parser(query).parse()
