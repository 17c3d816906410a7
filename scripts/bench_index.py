#!/usr/bin/env python3
"""Whole-process times of archiver's read commands on an archive, against issue 12's targets.

    .venv/bin/python scripts/bench_index.py ARCHIVE_DIR [--runs 5] [--words COMMON,MIDDLE,RARE]

Each command runs as a user runs it (``python -m archiver --archive DIR ...``, a fresh process, output to
/dev/null) ``--runs`` times; the table gives the median wall time (and the median CPU time, user + system, which
a busy shared machine disturbs less), with the target beside it. Also: ``list --json --all`` (every capture,
streamed: time and peak RSS), the index's bytes per capture (pages in use: free pages left by an upgrade are
not counted, nor the WAL), and the import time of a read command with whether it loaded the capture stack.

Search words: by default those ``scripts/make-index --words`` names (a word in every capture, one in ~6 %, one
in ~0.06 %), for archives that script built; give ``--words`` for another archive. The capture shown is the
middle one by ID, and its URL; the URL never captured is on a reserved domain.

The archive is opened as any command opens it: an index at an older schema is upgraded first (not timed:
the first run waits for it). Run it on a copy of an archive you do not want upgraded.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEVER_CAPTURED = "https://never-captured.example/nothing/here"
CAPTURE_STACK = ("yt_dlp", "playwright", "httpx")
# Issue 12, at 1 000 000 captures, whole process on 2 cores.
SECONDS = 0.3
# Bytes per capture of schema 5 on scripts/make-index's archives (100 000 captures: 1,789,198,336 bytes): the
# target is half of it.
SCHEMA_5_BYTES_PER_CAPTURE = 17_892


def make_index_words() -> list[str]:
    """The common, middle and rare word of scripts/make-index's vocabulary (as its --words prints them)."""
    loader = importlib.machinery.SourceFileLoader("make_index", str(REPO / "scripts" / "make-index"))
    spec = importlib.util.spec_from_loader("make_index", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    words = module.WORDS
    return [words[0], words[400], words[30_000]]


# Starts the command and reports its wall time, CPU time and peak RSS. A small process of its own (python -S -I)
# so that the peak RSS is the command's: a child forked straight from this script would count, until its exec,
# the pages of this one.
LAUNCHER = """import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("\\nbench_index: %f %f %d\\n" % (time.perf_counter() - started, usage.ru_utime + usage.ru_stime,
                                                  usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(python: str, archive: Path, args: list[str]) -> tuple[float, float, int, int]:
    """One whole-process run: (wall seconds, CPU seconds, peak RSS in KB, exit status)."""
    proc = subprocess.run([python, "-S", "-I", "-c", LAUNCHER, python, "-m", "archiver", "--archive", str(archive),
                           *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    stderr = proc.stderr.decode("utf-8", "replace")
    last = stderr.rstrip().rsplit("\n", 1)[-1]
    if proc.returncode not in (0, 1) or not last.startswith("bench_index: "):
        sys.stderr.write(f"bench_index: {' '.join(args)} exited {proc.returncode}: {stderr[-500:]}\n")
    wall, cpu, rss = last.split()[1:4] if last.startswith("bench_index: ") else ("nan", "nan", "0")
    return float(wall), float(cpu), int(rss), proc.returncode


def median_run(python: str, archive: Path, args: list[str], runs: int) -> dict[str, float]:
    results = [run(python, archive, args) for _ in range(runs)]
    return {"wall": statistics.median(r[0] for r in results), "cpu": statistics.median(r[1] for r in results),
            "rss_kb": max(r[2] for r in results), "code": max(r[3] for r in results)}


def import_time(python: str, archive: Path) -> tuple[float, list[str]]:
    """Seconds `status` spends importing (python -X importtime: every module's own time), and which modules of
    the capture stack it loaded."""
    probe = ("import json, sys\nfrom archiver.cli import main\nmain(sys.argv[2:])\n"
             "open(sys.argv[1], 'w').write(json.dumps(sorted(sys.modules)))\n")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_index-modules-{os.getpid()}.json"
    proc = subprocess.run([python, "-X", "importtime", "-c", probe, str(out), "--archive", str(archive), "status"],
                          capture_output=True, text=True, cwd=REPO)
    total = 0
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            own = line.split(":", 1)[1].split("|")[0].strip()
            if own.isdigit():
                total += int(own)
    modules = json.loads(out.read_text()) if out.exists() else []
    out.unlink(missing_ok=True)
    return total / 1e6, [m for m in modules if m.split(".")[0] in CAPTURE_STACK and "." not in m]


def index_facts(archive: Path) -> dict[str, object]:
    conn = sqlite3.connect(f"file:{archive / 'index.db'}?mode=ro", uri=True)
    try:
        captures = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
        middle = conn.execute("SELECT id, url FROM captures ORDER BY id LIMIT 1 OFFSET ?",
                              (max(0, captures // 2),)).fetchone()
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    return {"captures": captures, "id": middle[0] if middle else None, "url": middle[1] if middle else None,
            "used_bytes": (pages - free) * size, "file_bytes": pages * size, "schema": version}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (the median is shown)")
    parser.add_argument("--words", help="COMMON,MIDDLE,RARE search words (default: scripts/make-index's)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter archiver is installed in")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    archive = args.archive.resolve()
    if not (archive / "index.db").is_file():
        parser.error(f"{archive} holds no index.db")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    words = args.words.split(",") if args.words else make_index_words()
    if len(words) != 3:
        parser.error("--words takes three words: COMMON,MIDDLE,RARE")

    # Opened once first, so that an upgrade of an older index (not what is measured) happens before timing.
    run(args.python, archive, ["status"])
    facts = index_facts(archive)
    if not facts["captures"]:
        parser.error(f"{archive} holds no captures")
    rows: list[tuple[str, dict[str, float] | None, str, str]] = []

    def timed(label: str, command: list[str]) -> None:
        result = median_run(args.python, archive, command, args.runs)
        ok = result["wall"] <= SECONDS
        rows.append((label, result, f"<= {SECONDS:.1f} s", "yes" if ok else "NO"))

    timed("status", ["status"])
    timed("list", ["list"])
    timed("list --gone", ["list", "--gone"])
    timed("show <id>", ["show", facts["id"]])
    timed("show <url>", ["show", facts["url"]])
    timed("show <url never captured>", ["show", NEVER_CAPTURED])
    for kind, word in zip(("common", "middle", "rare"), words):
        timed(f"search {word} ({kind})", ["search", word])
    streamed = median_run(args.python, archive, ["list", "--json", "--all"], 1)
    # Streamed: every capture costs no more memory than one page does (the first row's `list`), give or take.
    page_rss = rows[1][1]["rss_kb"]
    rows.append(("list --json --all", streamed, "RSS of one page",
                 "yes" if streamed["rss_kb"] <= page_rss + 30_000 else "NO"))
    seconds, stack = import_time(args.python, archive)

    per_capture = facts["used_bytes"] / facts["captures"]
    target_bytes = SCHEMA_5_BYTES_PER_CAPTURE / 2
    if args.json:
        print(json.dumps({"archive": str(archive), "captures": facts["captures"], "schema": facts["schema"],
                          "commands": {label: r for label, r, _, _ in rows},
                          "bytes_per_capture": per_capture, "file_bytes_per_capture": facts["file_bytes"] / facts["captures"],
                          "import_seconds": seconds, "capture_stack_imported": stack, "words": words}, indent=2))
        return 0
    print(f"archive {archive}: {facts['captures']:,} captures, schema {facts['schema']}; "
          f"median of {args.runs} runs, whole process")
    print(f"{'command':<34} {'wall s':>8} {'cpu s':>7} {'peak RSS':>10}  {'target':<16} met")
    for label, r, target, met in rows:
        print(f"{label:<34} {r['wall']:>8.3f} {r['cpu']:>7.3f} {r['rss_kb'] / 1024:>8.0f} MB  {target:<16} {met}")
    print(f"{'index bytes per capture':<34} {per_capture:>8,.0f} {'':>7} {'':>10}  "
          f"{'<= ' + format(target_bytes, ',.0f'):<16} {'yes' if per_capture <= target_bytes else 'NO'}"
          f"   (file: {facts['file_bytes'] / facts['captures']:,.0f}, free pages included)")
    print(f"{'imports of a read command (status)':<34} {seconds:>8.3f} {'':>7} {'':>10}  "
          f"{'no capture stack':<16} {'yes' if not stack else 'NO: ' + ', '.join(stack)}")
    busy = statistics.median(r["wall"] / r["cpu"] for _, r, _, _ in rows if r["cpu"] > 0)
    if busy > 1.5:
        print(f"(wall times were {busy:.1f}x the CPU times: the machine was busy, and the wall figures say more "
              f"about it than about archiver; compare CPU times, or run again when it is quiet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
