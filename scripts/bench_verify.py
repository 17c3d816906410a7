#!/usr/bin/env python3
"""The figures of issue 12 for `verify`, `add -f` and the ledger, each beside its target.

    .venv/bin/python scripts/bench_verify.py ARCHIVE_DIR [--urls 100000] [--compare SMALLER_ARCHIVE_DIR]

ARCHIVE_DIR is an archive such as ``scripts/make-index`` builds; it is never written: `verify` appends a
``verified`` entry to the ledger, so it runs on a copy made here (index.db copied, warcs/ linked, keys/ copied)
in a temporary directory, removed at the end. Measured, each as a whole process (what a user waits for), wall
time and CPU time (user + system: on a shared machine the wall time also holds other people's work), and peak
RSS (``wait4``'s ``ru_maxrss`` of that process alone):

* ``verify ID`` of a capture in the middle, before any whole walk of the chain is on record, and again after;
* ``verify`` of the whole archive;
* with ``--compare``, ``verify`` of a second (smaller) archive too, and the ratio of the two peaks: memory that
  does not grow with the archive gives a ratio near 1 whatever the two sizes;
* ``add -f`` of ``--urls`` new URLs (10 % tweets, 4 % videos, 2 % Telegram posts, pages with and without tracking
  parameters) into a throwaway archive, then the same list again (all duplicates);
* the ledger's append, one entry per transaction as a runner makes them and batched as ``add -f`` makes them.

Exit 1 when a command fails; the table says which targets hold.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from archiver.custody import ledger  # noqa: E402
from archiver.store.index import Index  # noqa: E402

MB = 1024 * 1024


def archiver_cmd() -> list[str]:
    return [sys.executable, "-m", "archiver"]


def measure(args: list[str], cwd: Path) -> dict[str, float | int | str]:
    """Run one command to its end: wall and CPU seconds, peak RSS in bytes, exit status, last line of output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=cwd,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = (out.read() + err.read()).decode("utf-8", "replace").strip().splitlines()
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss * 1024,
            "code": proc.returncode, "said": lines[-1] if lines else ""}


def copy_archive(source: Path, into: Path) -> Path:
    """A copy `verify` may write to: index.db (and a WAL if one is there) copied, warcs/ linked, keys/ copied."""
    into.mkdir(parents=True)
    for name in ("index.db", "index.db-wal", "archiver.toml"):
        if (source / name).exists():
            shutil.copy2(source / name, into / name)
    (into / "warcs").symlink_to((source / "warcs").resolve())
    if (source / "keys").is_dir():
        shutil.copytree(source / "keys", into / "keys")
    return into


def middle_capture(archive: Path) -> tuple[str, int]:
    with sqlite3.connect(f"file:{archive / 'index.db'}?mode=ro", uri=True) as conn:
        count = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
        row = conn.execute("SELECT id FROM captures ORDER BY id LIMIT 1 OFFSET ?", (count // 2,)).fetchone()
    if row is None:
        raise SystemExit(f"bench_verify: {archive} holds no capture")
    return row[0], count


def url_list(n: int, seed: int = 5) -> list[str]:
    """N different URLs in the proportions of make-index's archive, some spelt with tracking parameters."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_-"
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.10:
            out.append(f"https://twitter.com/user{i % 5000}/status/{900_000_000_000_000_000 + i}")
        elif r < 0.14:
            out.append(f"https://www.youtube.com/watch?v={''.join(rng.choice(alphabet) for _ in range(10))}{i % 10}")
        elif r < 0.16:
            out.append(f"https://t.me/channel{i % 300}/{i + 1}")
        elif r < 0.30:
            out.append(f"https://news{i % 3000}.example/2016/12/{i}/story.html?utm_source=tw&id={i}")
        else:
            out.append(f"https://news{i % 3000}.example/{2010 + i % 17}/{i % 12 + 1:02d}/story-{i}.html")
    return out


def ledger_costs(where: Path, n: int = 2000) -> tuple[float, float, float]:
    """Microseconds per entry: ``append`` in one transaction, ``Appender`` in one transaction, and one ``append``
    per committed transaction (what a runner pays per seal: BEGIN IMMEDIATE, append, COMMIT with its fsync)."""
    results = []
    for mode in ("append", "batched", "committed"):
        index = Index(where / f"ledger-{mode}.db")
        entries = [{"job_id": k, "url": f"https://e.example/{k}", "detail": {"canonical_url": f"https://e.example/{k}",
                                                                           "kind": "page", "tags": []}}
                   for k in range(n if mode != "committed" else n // 10)]
        started = time.perf_counter()
        if mode == "append":
            with index.transaction() as conn:
                for e in entries:
                    ledger.append(conn, "queued", **e)
        elif mode == "batched":
            with index.transaction() as conn, ledger.Appender(conn) as appender:
                for e in entries:
                    appender.append("queued", **e)
        else:
            for e in entries:
                with index.transaction() as conn:
                    ledger.append(conn, "queued", **e)
        results.append((time.perf_counter() - started) / len(entries) * 1e6)
        if ledger.check_chain(index.conn)[1] is not None:
            raise SystemExit(f"bench_verify: the {mode} chain does not verify")
        index.close()
    return results[0], results[1], results[2]


def fmt_run(m: dict) -> str:
    return f"{m['wall']:.2f} s ({m['cpu']:.2f} s CPU)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path, help="an archive (make-index builds one); only read")
    parser.add_argument("--urls", type=int, default=100_000, help="how many URLs `add -f` queues")
    parser.add_argument("--compare", type=Path, metavar="DIR", help="a second archive, for the ratio of verify's peaks")
    parser.add_argument("--skip-verify-all", action="store_true", help="only `verify ID`, `add -f` and the ledger")
    args = parser.parse_args()
    source = args.archive.resolve()
    if not (source / "index.db").is_file():
        raise SystemExit(f"bench_verify: {source} has no index.db")
    rows: list[tuple[str, str, str, bool | None]] = []
    failed = []

    def check(name: str, m: dict, expect: int = 0) -> dict:
        if m["code"] != expect:
            failed.append(f"{name}: exit {m['code']}: {m['said']}")
        return m

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        copy = copy_archive(source, work / "copy")
        capture_id, count = middle_capture(copy)
        cmd = archiver_cmd() + ["--archive", str(copy)]
        one_cold = check("verify ID", measure(cmd + ["verify", capture_id], work))
        rows.append((f"verify ID ({count:,} captures; no whole walk on record)", fmt_run(one_cold), "≤ 1 s",
                     one_cold["wall"] <= 1.0))
        if not args.skip_verify_all:
            whole = check("verify", measure(cmd + ["verify"], work))
            rows.append((f"verify, whole archive ({count:,} captures)", fmt_run(whole), "-", None))
            rows.append(("verify, whole archive: peak RSS", f"{whole['rss'] / MB:.0f} MB",
                         "constant in N (2.2 GB at 100 k before)", None))
            one = check("verify ID", measure(cmd + ["verify", capture_id], work))
            rows.append(("verify ID, after a whole walk (checks entries since)", fmt_run(one), "≤ 1 s",
                         one["wall"] <= 1.0))
            if args.compare:
                small = copy_archive(args.compare.resolve(), work / "small")
                _, small_count = middle_capture(small)
                other = check("verify (compare)", measure(archiver_cmd() + ["--archive", str(small), "verify"], work))
                ratio = whole["rss"] / other["rss"]
                rows.append((f"verify peak RSS, {count:,} vs {small_count:,} captures",
                             f"{whole['rss'] / MB:.0f} MB / {other['rss'] / MB:.0f} MB = {ratio:.2f}",
                             "≤ 1.15 (constant memory)", ratio <= 1.15))
        listing = work / "urls.txt"
        listing.write_text("\n".join(url_list(args.urls)) + "\n")
        fresh = archiver_cmd() + ["--archive", str(work / "add-archive")]
        added = check("add -f", measure(fresh + ["add", "-f", str(listing)], work))
        rows.append((f"add -f, {args.urls:,} new URLs", fmt_run(added), "≤ 10 s", added["wall"] <= 10.0))
        rows.append((f"add -f, {args.urls:,} new URLs: peak RSS", f"{added['rss'] / MB:.0f} MB",
                     "bounded (480 MB before)", None))
        again = check("add -f again", measure(fresh + ["add", "-f", str(listing)], work))
        rows.append((f"add -f, the same {args.urls:,} again (all duplicates)", fmt_run(again), "≤ 10 s",
                     again["wall"] <= 10.0))
        rows.append(("add -f again: peak RSS", f"{again['rss'] / MB:.0f} MB", "bounded", None))
        chain = check("verify (after add)", measure(fresh + ["verify"], work))
        rows.append(("ledger after both adds", chain["said"][:90], "one unbroken chain", chain["code"] == 0))
        single, batched, committed = ledger_costs(work)
        rows.append(("ledger append, one per transaction (a runner's seal)", f"{committed:.0f} µs", "-", None))
        rows.append(("ledger append, many in one transaction", f"{single:.0f} µs", "-", None))
        rows.append(("ledger append, batched (add -f)", f"{batched:.0f} µs", "-", None))

    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':<{value_width}}  target")
    for name, value, target, held in rows:
        mark = "" if held is None else ("  ok" if held else "  MISSED")
        print(f"{name:<{width}}  {value:<{value_width}}  {target}{mark}")
    print(f"(2 cores shared; load average {os.getloadavg()[0]:.1f}: wall times include other processes' work)")
    for line in failed:
        print(f"bench_verify: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
