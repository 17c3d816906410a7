"""The index engines, one module each, behind one interface (``archiver.store.index.Index``): SQLite, the embedded
default (``sqlite.py``), and PostgreSQL for team mode (``postgres.py``). The engine is chosen here, once, from
``[index] url``; nothing else asks which one it has.

Both engines' connections take the same SQL (SQLite's ``?`` and ``:name`` placeholders, standard SQL otherwise)
and offer the same few methods for what the two dialects spell differently (``sql_indexed_by``, ``sql_json_has``,
``sql_json_text``, ``sql_skip_locked``, ``lock_ledger``, ``notify_jobs``), and ``stream`` for a read of unbounded size."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from archiver.store.index import Index


class IndexConnection(Protocol):
    """What every engine's connection offers (``sqlite.SQLiteConnection``, ``postgres.PostgresConnection``): SQL with
    ``?``/``:name`` placeholders, rows readable by position and by name (``row[0]``, ``row["id"]``, ``dict(row)``),
    and the dialect methods."""

    sql_skip_locked: str

    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def executemany(self, sql: str, rows: Any) -> Any: ...
    def stream(self, sql: str, params: Any = ...) -> Any: ...
    def sql_indexed_by(self, index: str) -> str: ...
    def sql_json_has(self, column: str) -> str: ...
    def sql_json_text(self, column: str, key: str) -> str: ...
    def lock_ledger(self) -> None: ...
    def lock_politeness(self) -> None: ...
    def notify_jobs(self) -> None: ...


def open_index(url: str, path: Path, unreachable_gone: tuple[int, float] = (4, 24.0)) -> "Index":
    """The index an archive's settings name: ``url`` empty, the SQLite file ``path``; a ``postgresql://`` URL, that
    database (psycopg is imported only then)."""
    if url:
        from archiver.store.engines.postgres import PostgresIndex
        return PostgresIndex(url, unreachable_gone)
    from archiver.store.index import Index
    return Index(path, unreachable_gone)
