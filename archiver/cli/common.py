"""What the command modules share: the command's Context, URL arguments, paging, tables and JSON output."""
from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click

from archiver.store.archive import DEFAULT_ARCHIVE, Archive
from archiver.errors import UserError
from archiver.store.index import Index


def _run_async(coroutine: Any) -> Any:
    import asyncio
    return asyncio.run(coroutine)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _emit_json_rows(rows: Iterable[dict[str, Any]]) -> None:
    """A JSON array written as it is read, one object per line: constant memory for any number of rows, and
    still one JSON document (``json.load``, ``jq '.[]'``)."""
    out = sys.stdout
    out.write("[")
    first = True
    for row in rows:
        out.write(("\n" if first else ",\n") + json.dumps(row, ensure_ascii=False, default=str))
        first = False
    out.write("]\n" if first else "\n]\n")
    out.flush()


# Rows a table measures its columns on; later rows are fitted to those widths, so a table of any length is
# printed as it is read.
TABLE_MEASURE = 1000


def _table(rows: Iterable[dict[str, Any]], columns: list[tuple[str, str, int]]) -> None:
    """Print rows as aligned columns; (key, heading, max width)."""
    iterator = iter(rows)
    cells = [[_cell(row.get(key), width) for key, _, width in columns] for row in _take(iterator, TABLE_MEASURE)]
    if not cells:
        return
    widths = [max(len(heading), *(len(c[i]) for c in cells)) for i, (_, heading, _) in enumerate(columns)]
    click.echo("  ".join(h.ljust(w) for (_, h, _), w in zip(columns, widths)).rstrip())
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())
    for row in iterator:
        c = [_cell(row.get(key), width) for (key, _, _), width in zip(columns, widths)]
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def _take(iterator: Iterator[Any], n: int) -> list[Any]:
    taken = []
    for item in iterator:
        taken.append(item)
        if len(taken) >= n:
            break
    return taken


def _cell(value: Any, width: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        value = ",".join(map(str, value))
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _parse_since(value: str | None) -> str | None:
    """`2026-11-01`, an ISO date-time, or a relative age such as `6h`, `2d`, `1w`."""
    if not value:
        return None
    match = re.fullmatch(r"(\d+)\s*([mhdw])", value.strip())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        delta = {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        when = datetime.now(timezone.utc) - delta
    else:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--since {value!r}: expected a date (2026-11-01), a date-time, or an age (6h, 2d)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Context:
    # The context of the command running in this process, for the log of a failure that ends it (main).
    _current: "Context | None" = None

    def __init__(self, archive_dir: str | None, config_file: str | None):
        self.archive_dir = archive_dir
        self.config_file = config_file
        self._archive: Archive | None = None
        Context._current = self

    @classmethod
    def last_archive_dir(cls) -> Path | None:
        """The archive directory of the command that ran, if it exists (a failure is logged there)."""
        ctx = cls._current
        if ctx is None:
            return None
        if ctx._archive is not None:
            return ctx._archive.path
        chosen = Path(ctx.archive_dir or os.environ.get("ARCHIVER_HOME") or DEFAULT_ARCHIVE).expanduser().absolute()
        return chosen if chosen.is_dir() else None

    @property
    def archive(self) -> Archive:
        if self._archive is None:
            self._archive = Archive.open(self.archive_dir, self.config_file)
        return self._archive

    def index(self):
        return self.archive.index()


pass_ctx = click.make_pass_decorator(Context)


def _read_index(ctx: Context, query: Callable[[Index], Any]) -> Any:
    """Open the index, run one read, close it."""
    index = ctx.index()
    try:
        return query(index)
    finally:
        index.close()
