"""Commands that read the index and capture nothing: status, list, show, search, platforms."""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

import click

from archiver.pipeline import queue, schedule
from archiver.store import details, overview, readback, received, timeline
from archiver.custody import timestamps
from archiver import urls
from archiver.errors import BadURL, NotFound, UserError
from archiver.cli.app import cli
from archiver.cli.common import (_emit_json, _emit_json_rows, _table, _cell, _size, _parse_since, Context, pass_ctx,
                                 _read_index)


# What list and search show unless told otherwise: one page, newest first.
PAGE_SIZE = 50


page_options = [
    click.option("--limit", type=click.IntRange(min=1), metavar="N",
                 help=f"Show N, newest first (default {PAGE_SIZE}: one page)."),
    click.option("--all", "all_", is_flag=True, help="Show all (JSON is streamed: constant memory)."),
    click.option("--before", metavar="ID", help="Only those older than this capture ID: the next page after a page "
                 "that ended with it."),
]


def _page_options(func):
    for option in reversed(page_options):
        func = option(func)
    return func


def _page_limit(limit: int | None, all_: bool) -> int | None:
    """How many rows to show: None for all."""
    if all_ and limit is not None:
        raise UserError("give --limit N or --all, not both")
    return None if all_ else (limit or PAGE_SIZE)


class _Page:
    """Rows up to a limit, read one by one; after reading, whether there were more, and the last one shown (a
    page asks its query for one row more than it shows)."""

    def __init__(self, rows: Iterable[dict[str, Any]], limit: int | None):
        self.rows, self.limit = rows, limit
        self.shown, self.more, self.last = 0, False, None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            if self.limit is not None and self.shown >= self.limit:
                self.more = True
                return
            self.shown += 1
            self.last = row
            yield row

    def hint(self, noun: str, cursor: bool = True) -> None:
        """Tell the reader, on stderr (stdout may be JSON), that there is more and how to see it."""
        if not self.more:
            return
        if cursor and self.last is not None:
            how = f"--before {self.last['id']} for the next {self.limit}, or --all for all"
        else:
            how = "--limit N for more, or --all for all"
        click.echo(f"archiver: {self.shown} {noun} shown, newest first; there are more: add {how}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--markdown", is_flag=True, help="The support matrix as the README's table (without versions).")
def platforms(as_json: bool, markdown: bool) -> None:
    """The platform paths: what each captures, when an item counts as gone, how liveness is checked, and what
    it relies on (extractor and version). A capture made by any other extractor is partial, never ok."""
    from archiver.capture import platforms as paths
    if markdown:
        click.echo(paths.markdown_table(), nl=False)
        return
    rows = [p.as_dict() for p in paths.PATHS]
    if as_json:
        _emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']:<13}{row['label']}")
        for heading, value in (("URLs", "; ".join(row["examples"])), ("captures", "; ".join(row["captures"])),
                               ("gone when", ", ".join(row["tombstones"])), ("liveness", row["liveness"]),
                               ("relies on", row["relies_on"]), ("note", row["note"])):
            if value:
                click.echo(f"  {heading:<11}{value}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Jobs by state, the oldest queued job, and recent failures."""
    info = _read_index(ctx, lambda index: overview.queue_status(index, ctx.archive.settings))
    if as_json:
        _emit_json(info)
        return
    click.echo(f"queued {info['queued']}   running {info['running']}   done {info['done']}   "
               f"failed {info['failed']}   captures {info['captures']}")
    if info["oldest_queued"]:
        o = info["oldest_queued"]
        click.echo(f"oldest queued: job {o['id']} since {o['requested_at']}  {o['url']}")
    for r in info["running_jobs"]:
        click.echo(f"running: job {r['id']} by {r['lease_owner']} (lease until {r['lease_expires']})  {r['url']}")
    if info["recent_failures"]:
        click.echo("recent failures:")
        _table(info["recent_failures"], [("finished_at", "WHEN", 24), ("job_id", "JOB", 6),
                                         ("failure_class", "CLASS", 12), ("state", "NOW", 7),
                                         ("url", "URL", 60), ("message", "MESSAGE", 70)])
    stamps = info["timestamps"]
    if stamps["done"] or stamps["pending"] or stamps["failed"]:
        click.echo(f"timestamps: {stamps['done']} done, {stamps['pending']} pending, {stamps['failed']} failed")
    for url, n in stamps["pending_unconfigured"].items():
        click.echo(f"  {n} pending for {url}, a TSA no longer in timestamp.tsa_urls: waiting, not retried, until "
                   f"it is listed again")


@cli.command(name="list")
@click.option("--gone", "state", flag_value="gone",
              help="Items the web no longer shows (deleted, suspended, 404, removed...), with the evidence held.")
@click.option("--changed", "state", flag_value="changed", help="Items whose content changed after a capture.")
@click.option("--unreachable", "state", flag_value="unreachable", help="Items that do not answer at the moment.")
@click.option("--live", "state", flag_value="live", help="Items that were live at their last check or capture.")
@click.option("--tag", help="Only captures (and received files) with this tag.")
@click.option("--kind", help="Only this kind (page, file, tweet...; received: pages of files received from others).")
@click.option("--status", "status_", type=click.Choice(["ok", "partial", "failed", "received"]),
              help="Only this outcome (received: pages of files received from others, not captured here).")
@click.option("--since", help="Only captures started (or files received) since a date (2026-11-01) or an age "
                              "(6h, 2d, 1w).")
@_page_options
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one capture per line, streamed.")
@pass_ctx
def list_(ctx: Context, state, tag, kind, status_, since, limit, all_, before, as_json) -> None:
    """Captures, newest first, one page at a time (--limit N, --all, --before ID), with the pages of files received
    from others (archiver receive) among them, marked "received"; or, with --gone/--changed/--unreachable/--live,
    items by their state (--since then means: entered that state, or changed, since)."""
    since_iso = _parse_since(since)
    limit = _page_limit(limit, all_)
    if state:
        if before:
            raise UserError(f"--before takes a capture ID: it pages captures and search hits, not --{state} items "
                            f"(use --limit N or --all)")
        _list_items(ctx, state, since_iso, limit, as_json)
        return
    index = ctx.index()
    try:
        before = index.check_cursor(before) if before else None
        page = _Page(received.iter_listed(index, tag=tag, kind=kind, status=status_, since=since_iso,
                                          before=before, limit=None if limit is None else limit + 1), limit)
        if as_json:
            _emit_json_rows(page)
        else:
            _table(page, [("id", "ID", 26), ("started_at", "CAPTURED", 20), ("status", "STATUS", 8),
                          ("http_status", "HTTP", 4), ("record_count", "RECS", 5), ("url", "URL", 60),
                          ("title", "TITLE", 40)])
            if not page.shown:
                click.echo("no captures", err=True)
    finally:
        index.close()
    page.hint("captures")


def _list_items(ctx: Context, state: str, since_iso: str | None, limit: int | None, as_json: bool) -> None:
    page = _Page(_read_index(ctx, lambda index: overview.items_in_state(
        index, state, since_iso, limit=None if limit is None else limit + 1)), limit)
    rows = list(page)
    if as_json:
        _emit_json_rows(rows)
        page.hint(f"{state} items", cursor=False)
        return
    if not rows:
        click.echo(f"no {state} items" + (" in that period" if since_iso else ""), err=True)
        return
    for r in rows:
        r["held"] = overview.evidence_held(r)
    when = ("changed_at", "CHANGED", 20) if state == "changed" else ("state_since", "SINCE", 20)
    _table(rows, [("state", "STATE", 11), ("state_class", "CLASS", 14), when,
                  ("last_seen_live", "LAST SEEN LIVE", 20), ("held", "EVIDENCE HELD", 40), ("url", "URL", 70)])
    page.hint(f"{state} items", cursor=False)


def _print_timeline(index, key: str) -> None:
    """The item's state, its watch and its history: captures, checks (runs of equal answers folded into one
    line) and state changes."""
    tl = timeline.item_timeline(index, key)
    if tl.empty:
        return
    click.echo("")
    item, watch = tl.item, tl.watch
    if item:
        state = item["state"] + (f" ({item['state_class']})" if item["state_class"] else "")
        click.echo(f"state: {state} since {item['state_since']}; last seen live {item['last_seen_live'] or '-'}")
    if watch:
        sched = timeline.watch_schedule(watch)
        if watch["active"]:
            click.echo(f"watched: {sched}, checks every {schedule.format_interval(watch['check_every_seconds'])}; "
                       f"next capture {watch['next_capture_at']}, next check {watch['next_check_at'] or '-'}")
        else:
            click.echo(f"was watched ({sched}) until {watch['removed_at']}")
    if not tl.events:
        return
    click.echo("timeline:")
    for line in _timeline_lines(timeline.fold_checks(tl.events)):
        click.echo(f"  {line}")


def _timeline_lines(events: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for e in events:
        if e["event"] == "check":
            what = f"check     {e['result']}" + (f" ({e['class']})" if e["class"] else "") + \
                (f" HTTP {e['http_status']}" if e["http_status"] else "")
            if e["count"] == 1:
                lines.append(f"{e['at'][:19]}  {what}" + (f" -> capture queued (job {e['job_id']})"
                                                         if e["job_id"] else ""))
            else:
                lines.append(f"{e['at'][:19]}  {what}  x{e['count']} until {e['until'][:19]}")
        elif e["event"] == "capture":
            lines.append(f"{e['at'][:19]}  capture   {e['result']}" + (f" ({e['class']})" if e["class"] else "")
                         + f"  {e['capture_id']}")
        else:
            to = e["to"] + (f" ({e['class']})" if e["class"] else "")
            lines.append(f"{e['at'][:19]}  STATE     {e['from'] or 'new'} -> {to}  (by {e['source']})")
    return lines


@cli.command()
@click.argument("ident", metavar="ID|URL")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, ident: str, as_json: bool) -> None:
    """Everything known about a capture: provenance, file, hashes, records. Also a file received from others (its
    receipt's ID) or one of its pages, with its receipt."""
    index = ctx.index()
    try:
        try:
            cap = index.find_capture(ident)
        except NotFound:
            from archiver.cli.exchange import show_received
            if show_received(ctx, index, ident, as_json) or _show_jobs_only(index, ident, as_json):
                return
            raise
        if as_json:
            data = details.capture_details(ctx.archive, index, cap)
            if data.get("provenance_error"):
                _warn_provenance(cap["id"], data["provenance_error"])
            _emit_json(data)
            return
        records = index.capture_records(cap["id"])
        # The provenance is read back from the sealed WARC (the index keeps its place only).
        cap["provenance"], unreadable = readback.provenance(ctx.archive, cap, records)
        if unreadable:
            _warn_provenance(cap["id"], unreadable)
        outlinks = index.capture_outlinks(cap["id"])
        others = index.captures_of_key(cap["key"])
        job = queue.get_job(index, cap["job_id"]) if cap.get("job_id") else None
        children = index.children(cap["id"])
        found_in = index.referenced_by(cap["key"])
        tweet, video, post = index.tweet_of(cap["id"]), index.video_of(cap["id"]), index.post_of(cap["id"])
        tsa_urls = timestamps.TimestampSettings.from_settings(ctx.archive.settings).tsa_urls
        stamps = [{**{k: t[k] for k in timestamps.SHOWN_FIELDS}, "tsa_configured": t["tsa_url"] in tsa_urls}
                  for t in timestamps.of_capture(index.conn, cap["id"])]
        _print_capture(ctx, cap, records, outlinks, others, job, children, found_in, tweet, video, post)
        _print_timestamps([{**t, "token_path": ctx.archive.token_at(cap, t["token_path"])} for t in stamps])
        _print_timeline(index, cap["key"])
    finally:
        index.close()


def _warn_provenance(capture_id: str, why: str) -> None:
    click.echo(f"archiver: warning: capture {capture_id}: its provenance record cannot be read back "
               f"({why}); run `archiver verify {capture_id}`", err=True)


def _print_capture(ctx: Context, cap: dict[str, Any], records: list[dict[str, Any]], outlinks: list[dict[str, Any]],
                   others: list[dict[str, Any]], job: dict[str, Any] | None, children: list[dict[str, Any]],
                   found_in: list[dict[str, Any]], tweet: dict[str, Any] | None, video: dict[str, Any] | None,
                   post: dict[str, Any] | None = None) -> None:
    prov = cap.get("provenance") or {}
    data = {"records": records, "parent": details.parent_of(job, found_in),
            "other_captures": [o for o in others if o["id"] != cap["id"]]}
    main = prov.get("main") or {}
    lines = [
        ("capture", cap["id"]), ("url", cap["url"]), ("final url", cap["final_url"]),
        ("status", cap["status"] + (f" ({cap['failure_class']}: {cap['failure_message']})" if cap["failure_class"] else "")),
        ("http status", cap["http_status"]), ("content type", cap["content_type"]), ("title", cap["title"]),
        ("captured", f"{cap['started_at']} -> {cap['finished_at']}"), ("method", cap["method"]),
        ("logged in", details.login_of(prov) or "no"),
        ("requested by", f"{cap['requested_by']} at {cap['requested_at']}"),
        ("tags", ", ".join(cap["tags"]) or "-"), ("note", cap["note"]),
        ("server ip", main.get("ip")), ("protocol", main.get("protocol")),
        ("tls", (main.get("tls") or {}).get("protocol")),
        ("redirects", " -> ".join(f"{r['status']} {r['url']}" for r in prov.get("redirects", [])) or "-"),
        ("warc", ctx.archive.stored_at(cap) + (f" (version {cap['warc_version']})" if cap.get("warc_version")
                                              else "")), ("warc sha256", cap["warc_sha256"]),
        ("warc size", f"{cap['warc_size']} bytes ({_size(cap['warc_size'])}), {cap['record_count']} records"),
        ("software", ", ".join(f"{k} {v}" for k, v in sorted((prov.get("software") or {}).items()))),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value if value not in (None, '') else '-'}")
    if prov.get("unrecorded"):
        click.echo(f"\nnot recorded ({len(prov['unrecorded'])}):")
        for u in prov["unrecorded"][:20]:
            click.echo(f"  {u['url']}  ({u['reason']})")
    click.echo(f"\nrecords ({len(records)}):")
    _table(data["records"], [("offset", "OFFSET", 10), ("type", "TYPE", 9), ("http_status", "HTTP", 4),
                             ("content_type", "CONTENT-TYPE", 28), ("uri", "URI", 70),
                             ("payload_digest", "PAYLOAD SHA-256", 71)])
    if tweet:
        click.echo(f"\ntweet {tweet['tweet_id']}: {tweet['availability']}")
        if tweet["availability"] == "available":
            click.echo(f"  @{tweet['screen_name']} ({tweet['name']}), {tweet['created_at']} "
                       f"[id time {tweet['snowflake_time']}: {tweet['time_check']}], lang {tweet['lang']}, "
                       f"{tweet['media_count']} media")
            click.echo(f"  {tweet['text']}")
    if post:
        click.echo(f"\n{post['platform']} post {post['post_id']}: {post['availability']}")
        if post["availability"] == "available":
            click.echo(f"  {post['author'] or '?'} ({post['author_name'] or '-'}), {post['posted_at'] or '?'}"
                       + (f", edited {post['edited_at']}" if post["edited_at"] else "")
                       + f", lang {post['lang'] or '-'}, {post['media_count'] or 0} media")
            click.echo(f"  {post['text'] or ''}")
    if video:
        click.echo(f"\nvideo {video['extractor']}:{video['video_id']}  {video['title'] or ''}  "
                   f"{video['duration'] or '?'}s  {_size(video['media_bytes'])}"
                   + (f"  [cut: {video['cut']}]" if video["cut"] else ""))
    platform = prov.get("platform")
    if platform:
        verdict = "its own path" if platform["match"] else f"NOT its own path: {platform['message']}"
        click.echo(f"platform {platform['path']}: {platform['extractor']} ({platform['engine']} "
                   f"{platform['engine_version']}), {verdict}")
    if data["parent"]:
        p = data["parent"]
        click.echo(f"\nfound in capture {p['capture_id']} ({p.get('found_in') or 'followed'})")
    if children:
        click.echo(f"\nreferenced evidence ({len(children)}):")
        _table(children, [("kind", "KIND", 6), ("key", "KEY", 40), ("found_in", "FOUND IN", 34),
                          ("job_state", "JOB", 7), ("capture_id", "CAPTURE", 26), ("capture_status", "STATUS", 7)])
    if outlinks:
        click.echo(f"\noutlinks: {len(outlinks)}")
    if data["other_captures"]:
        click.echo("\nother captures of this URL:")
        _table(data["other_captures"], [("id", "ID", 26), ("started_at", "CAPTURED", 27), ("status", "STATUS", 7)])


def _print_timestamps(stamps: list[dict[str, Any]]) -> None:
    if not stamps:
        return
    click.echo(f"\ntimestamps ({len(stamps)}):")
    for t in stamps:
        if t["state"] == "done":
            click.echo(f"  done     {t['gen_time']}  {t['tsa_name'] or '-'}  {t['tsa_url']}  {t['token_path']}")
        elif t["state"] == "pending" and not t["tsa_configured"]:
            click.echo(f"  waiting  {t['tsa_url']}  {t['attempts']} attempt(s): this TSA is no longer in "
                       f"timestamp.tsa_urls, so it is not asked until it is listed again"
                       + (f" (last error: {t['last_error']})" if t["last_error"] else ""))
        else:
            when = f", next try {t['next_attempt_at']}" if t["next_attempt_at"] else ""
            click.echo(f"  {t['state']:<8} {t['tsa_url']}  {t['attempts']} attempt(s){when}"
                       + (f": {t['last_error']}" if t["last_error"] else ""))


def _show_jobs_only(index, ident: str, as_json: bool) -> bool:
    """A URL that was requested but never sealed (failed, or still queued): its jobs are the findings."""
    try:
        key = urls.parse(ident).dedup_key
    except BadURL:
        return False
    jobs = queue.jobs_for_url(index, key)
    if not jobs and not index.timeline(key) and not schedule.watch_of(index, key):
        return False
    fields = ("id", "url", "state", "attempts", "max_attempts", "requested_by", "requested_at",
              "next_attempt_at", "last_failure_class", "last_failure")
    rows = [{k: j[k] for k in fields} for j in jobs]
    if as_json:
        _emit_json({"url": ident, "captures": [], "jobs": rows, "item": index.item(key),
                    "watch": schedule.watch_of(index, key), "timeline": index.timeline(key)})
    else:
        click.echo(f"no capture of {ident} yet" + ("; its jobs:" if rows else ""))
        _table(rows, [("id", "JOB", 6), ("state", "STATE", 7), ("attempts", "TRIES", 5),
                      ("requested_at", "REQUESTED", 27), ("last_failure_class", "CLASS", 12),
                      ("last_failure", "LAST FAILURE", 80)])
        _print_timeline(index, key)
    return True


# Characters a terminal would act on (escape sequences, bells, carriage returns): archived text is hostile, so a
# diff shows them as escapes rather than sending them to the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(line: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line)


@cli.command()
@click.argument("ident_a", metavar="ID1")
@click.argument("ident_b", metavar="ID2")
@click.option("-U", "--context", type=click.IntRange(min=0), default=3, show_default=True, metavar="N",
              help="Lines of context around each change.")
@click.option("--json", "as_json", is_flag=True, help="Hunks (equal, insert, delete, replace) with both sides' text.")
@pass_ctx
def diff(ctx: Context, ident_a: str, ident_b: str, context: int, as_json: bool) -> None:
    """What changed in the visible text between two captures (IDs, or URLs: their newest capture), read back from
    their sealed WARCs: a unified diff, or with --json hunks for scripts. Each text is compared up to
    500 000 characters and 5 000 lines."""
    from archiver.store import textdiff   # here: difflib is for this command only, not for every command's start
    result = _read_index(ctx, lambda index: textdiff.diff_captures(ctx.archive, index, ident_a, ident_b))
    for side in (result["a"], result["b"]):
        if not side["has_text"]:
            click.echo(f"archiver: note: capture {side['id']} holds no visible text (compared as empty)", err=True)
        if side["truncated"]:
            click.echo(f"archiver: note: capture {side['id']}'s text is longer than "
                       f"{result['limits']['max_text_chars']:,} characters or {result['limits']['max_lines']:,} "
                       f"lines: only its beginning is compared", err=True)
    if as_json:
        _emit_json(result)
        return
    if result["identical"]:
        a, b = result["a"], result["b"]
        click.echo(_printable(f"--- {a['id']}  {a['url']}  captured {a['started_at']}"))
        click.echo(_printable(f"+++ {b['id']}  {b['url']}  captured {b['started_at']}"))
        click.echo("no difference in the visible text")
        return
    out = []
    for line in textdiff.unified(result, context):
        out.append(_printable(line))
        if len(out) >= 1000:
            click.echo("\n".join(out))
            out = []
    if out:
        click.echo("\n".join(out))


@cli.command()
@click.argument("query")
@_page_options
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one hit per line, streamed.")
@pass_ctx
def search(ctx: Context, query: str, limit: int | None, all_: bool, before: str | None, as_json: bool) -> None:
    """Full-text search over captured titles and visible text, newest first, one page at a time (--limit N,
    --all, --before ID). Snippets are read back from the sealed WARCs."""
    limit = _page_limit(limit, all_)
    index = ctx.index()
    try:
        page = _Page(readback.search(index, ctx.archive, query, before=before,
                                     limit=None if limit is None else limit + 1), limit)
        if as_json:
            _emit_json_rows(page)
        else:
            for r in page:
                click.echo(f"{r['id']}  {r['started_at'][:19]}  {r['status']:<7} {r['url']}")
                if r["title"]:
                    click.echo(f"    {r['title']}")
                if r["snippet"] is not None:
                    click.echo(f"    {_cell(r['snippet'], 200)}")
                if r.get("snippet_error"):
                    click.echo(f"    (text not readable: {r['snippet_error']})")
            if not page.shown:
                click.echo(f"no captures match {query!r}", err=True)
    finally:
        index.close()
    page.hint("hits")
