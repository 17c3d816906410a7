"""What changed in the visible text between two captures: ``archiver diff`` and the workbench's item page.

The text compared is each capture's last ``urn:text:`` record, the text the full-text index searched when it was
sealed (the index keeps no copy of it: schema 6, contentless), read back from the sealed WARC through the
capture's store -- a file in <archive>/warcs or an object on S3 -- and checked against its indexed digest
(``readback.text``). It is diffed line by line with difflib into hunks (equal, insert, delete, replace), each
with both sides' text, and each replaced stretch word by word as well.

Bounded: each side is cut at ``MAX_TEXT_CHARS`` characters and ``MAX_LINES`` lines before it is diffed, and the
result says so (``truncated``); a replaced stretch is compared word by word only up to ``MAX_WORD_TOKENS`` words.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from archiver.errors import ArchiverError
from archiver.store import readback
from archiver.store.index import Index

if TYPE_CHECKING:
    from archiver.store.archive import Archive

MAX_TEXT_CHARS = 500_000
# difflib's matcher slows with the product of the lengths where lines or words repeat: these bounds keep the
# worst case (alternating changes, a word repeated throughout) near a second of one core.
MAX_LINES = 5_000
MAX_WORD_TOKENS = 1_000

# What each side of a diff says about its capture (show --json's field names).
SIDE_FIELDS = ("id", "url", "final_url", "key", "status", "title", "started_at")


class TextUnreadable(ArchiverError):
    """A capture's text record is in the index but cannot be read back as sealed (missing file, altered bytes)."""

    exit_code = 1


@dataclass
class CaptureText:
    capture: dict[str, Any]
    text: str | None           # None: the capture holds no text record (a failed capture, a file)
    truncated: bool


def capture_text(archive: Archive, index: Index, capture: dict[str, Any]) -> CaptureText:
    """The visible text of a capture (found by ``Index.find_capture``), cut at MAX_TEXT_CHARS/MAX_LINES.
    Raises TextUnreadable when its record cannot be read back as sealed."""
    text, problem = readback.text(archive, capture, index.text_record(capture["id"]))
    if problem:
        raise TextUnreadable(f"capture {capture['id']}: its text cannot be read back ({problem}); "
                             f"run `archiver verify {capture['id']}`")
    if text is None:
        return CaptureText(capture, None, False)
    truncated = False
    if len(text) > MAX_TEXT_CHARS:
        text, truncated = text[:MAX_TEXT_CHARS], True
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        text, truncated = "\n".join(lines[:MAX_LINES]), True
    return CaptureText(capture, text, truncated)


def _words(a: str, b: str) -> list[dict[str, Any]] | None:
    """A replaced stretch word by word (each side's words joined by one space), or None past MAX_WORD_TOKENS
    words in all. Whitespace is not a token: as one, it would repeat throughout and slow the matcher."""
    ta, tb = a.split(), b.split()
    if len(ta) + len(tb) > MAX_WORD_TOKENS:
        return None
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    return [{"op": tag, "a_text": " ".join(ta[i1:i2]), "b_text": " ".join(tb[j1:j2])}
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()]


def diff_texts(a: str, b: str) -> dict[str, Any]:
    """Line-wise hunks from ``a`` to ``b``, covering both texts in order: each ``{"op": equal|insert|delete|replace,
    "a_start", "a_end", "b_start", "b_end"`` (0-based line ranges), ``"a_text", "b_text"}`` (the lines joined by
    newlines), and for a replace ``words`` (word-level ops, or None when the stretch is too long), with
    ``stats``: lines equal, inserted, deleted, and replaced on each side."""
    al, bl = a.splitlines(), b.splitlines()
    hunks = []
    stats = {"equal": 0, "inserted": 0, "deleted": 0, "replaced_a": 0, "replaced_b": 0}
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, al, bl).get_opcodes():
        hunk: dict[str, Any] = {"op": tag, "a_start": i1, "a_end": i2, "b_start": j1, "b_end": j2,
                                "a_text": "\n".join(al[i1:i2]), "b_text": "\n".join(bl[j1:j2])}
        if tag == "equal":
            stats["equal"] += i2 - i1
        elif tag == "insert":
            stats["inserted"] += j2 - j1
        elif tag == "delete":
            stats["deleted"] += i2 - i1
        else:
            stats["replaced_a"] += i2 - i1
            stats["replaced_b"] += j2 - j1
            hunk["words"] = _words(hunk["a_text"], hunk["b_text"])
        hunks.append(hunk)
    return {"identical": all(h["op"] == "equal" for h in hunks), "hunks": hunks, "stats": stats}


def diff_captures(archive: Archive, index: Index, ident_a: str, ident_b: str) -> dict[str, Any]:
    """The difference between the visible texts of two captures (each an ID, an ID prefix or a URL, as ``show``
    takes them: NotFound for one the index does not know), JSON-ready: ``a`` and ``b`` (each capture's id, URL,
    final URL, key, status, title, started_at, ``has_text``, ``text_chars``, ``truncated``), ``identical``,
    ``truncated``, ``limits``, ``hunks`` and ``stats`` (``diff_texts``)."""
    sides = [capture_text(archive, index, index.find_capture(ident)) for ident in (ident_a, ident_b)]
    result = diff_texts(*(s.text or "" for s in sides))
    a, b = ({**{k: s.capture.get(k) for k in SIDE_FIELDS}, "has_text": s.text is not None,
             "text_chars": len(s.text or ""), "truncated": s.truncated} for s in sides)
    return {"a": a, "b": b, "identical": result["identical"], "truncated": a["truncated"] or b["truncated"],
            "limits": {"max_text_chars": MAX_TEXT_CHARS, "max_lines": MAX_LINES}, "hunks": result["hunks"],
            "stats": result["stats"]}


def _lines(hunks: list[dict[str, Any]], side: str) -> list[str]:
    out: list[str] = []
    for h in hunks:
        if h[f"{side}_end"] > h[f"{side}_start"]:
            out.extend(h[f"{side}_text"].split("\n"))
    return out


def unified(diff: dict[str, Any], context: int = 3) -> Iterator[str]:
    """A ``diff_captures`` result as a unified diff (lines without their ends), headed by both captures' IDs,
    URLs and times."""
    a, b = diff["a"], diff["b"]
    yield from difflib.unified_diff(
        _lines(diff["hunks"], "a"), _lines(diff["hunks"], "b"),
        fromfile=f"{a['id']}  {a['url']}  captured {a['started_at']}",
        tofile=f"{b['id']}  {b['url']}  captured {b['started_at']}", n=context, lineterm="")
