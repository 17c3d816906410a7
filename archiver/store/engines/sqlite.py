"""The SQLite engine's connection: sqlite3's own (rows are ``sqlite3.Row``), with the few pieces of SQL that SQLite
spells its own way. Schema and migrations: ``archiver.store.index`` (SQLITE_MIGRATIONS)."""
from __future__ import annotations

import sqlite3
from typing import Any


class SQLiteConnection(sqlite3.Connection):
    """``sqlite3.connect(..., factory=SQLiteConnection)``: execute, executemany and rows exactly as sqlite3 gives
    them, plus the dialect methods every engine's connection has (archiver/store/engines/__init__.py)."""

    @staticmethod
    def sql_indexed_by(index: str) -> str:
        """Force an index where SQLite's planner, without statistics, would walk another."""
        return f" INDEXED BY {index}"

    @staticmethod
    def sql_json_has(column: str) -> str:
        """A condition: the JSON array in ``column`` holds the string bound to the one ``?`` it contains."""
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?)"

    @staticmethod
    def sql_json_text(column: str, key: str) -> str:
        """The text of top-level ``key`` of the JSON object in ``column``."""
        return f"json_extract({column}, '$.{key}')"

    def stream(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """The rows of a read that may return any number of them: sqlite3's cursor steps through them as they are
        read, holding one at a time."""
        return self.execute(sql, params)

    # BEGIN IMMEDIATE already holds the one write lock: claims and ledger appends need nothing more.
    sql_skip_locked = ""

    def lock_ledger(self) -> None:
        """Serialize ledger appends: the write transaction (BEGIN IMMEDIATE) already does, on SQLite."""

    def lock_politeness(self) -> None:
        """Serialize claims under per-host limits: the write transaction already does, on SQLite."""

    def notify_jobs(self) -> None:
        """Wake idle runners: on SQLite they poll (queue.poll_seconds)."""
