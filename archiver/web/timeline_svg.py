"""An item's timeline drawn as SVG, for the workbench's item page: a pure function of the timeline's events
(``archiver.store.timeline``), with no script, no style sheet and nothing loaded from anywhere.

One mark per event, each in its own lane and shape (a capture a circle, a check a square, or a bar over a run
of equal checks, a state change a diamond), every one with a ``<title>`` (the tooltip: what, when, why) and an
``id`` a page can link to. Above the marks, a band shows the item's state over time, each stretch coloured AND
named (live, changed, gone, unreachable), so the drawing reads without colour too; a filled mark is a live answer
or an ok capture, a hollow one anything else. A legend in words says so.

Everything drawn from the archive (URLs, classes, messages, capture IDs) is XML-escaped, with the characters XML
cannot hold removed: titles and messages come from archived content, which is hostile. The output depends only
on the events (no clock, no randomness), so the same timeline always gives the same bytes.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

WIDTH = 960
LEFT, RIGHT = 96, 24             # room for the lane names, and for the last tick's label
BAND_Y, BAND_H = 16, 20          # the state band
LANES = {"transition": 58, "capture": 84, "check": 110}
AXIS_Y = 132
HEIGHT = 212
MARK = 6                         # half the size of a mark

# Colours of states (and of the answers that lead to them); each always comes with its name in words.
STATE_COLOURS = {"live": "#2e7d32", "changed": "#ef6c00", "gone": "#c62828", "unreachable": "#616161"}
OUTCOME_STATES = {"ok": "live", "partial": "changed", "failed": "gone"}
UNKNOWN_COLOUR = "#455a64"

# XML 1.0 cannot hold these characters at all, escaped or not: removed from anything drawn.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_ID = re.compile(r"[^A-Za-z0-9_.-]")


def _x(value: Any) -> str:
    """Text or attribute value from the archive, safe inside SVG: markup characters escaped, quotes too."""
    text = _NOT_XML.sub("", "" if value is None else str(value))
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&#39;"))


def _id(prefix: str, anchor: Any) -> str:
    return prefix + _NOT_ID.sub("_", str(anchor or ""))


def _safe_href(href: str) -> str:
    """A link inside the workbench only: a path, a query or a fragment (never ``javascript:`` or another site)."""
    if not href.startswith(("/", "#", "?")) or href.startswith("//") or "\\" in href:
        raise ValueError(f"timeline links must stay in the workbench (a path, ?query or #fragment): {href!r}")
    return href


def _time(iso: Any) -> float | None:
    try:
        when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _num(value: float) -> str:
    return f"{value:.1f}"


def _describe(e: dict[str, Any]) -> str:
    """The tooltip of an event: what happened, when, and why."""
    cls = f" ({e['class']})" if e.get("class") else ""
    http = f" HTTP {e['http_status']}" if e.get("http_status") else ""
    if e["event"] == "capture":
        text = f"capture {e.get('result')}{cls}{http} at {e['at']}: {e.get('capture_id')}"
    elif e["event"] == "check":
        count = e.get("count") or 1
        text = f"check {e.get('result')}{cls}{http} at {e['at']}"
        if count > 1:
            text = f"{count} checks {e.get('result')}{cls}{http} from {e['at']} until {e.get('until')}"
        if e.get("state"):
            text += f"; item {e['state']}"
        if e.get("job_id"):
            text += f"; capture queued (job {e['job_id']})"
        if e.get("message"):
            text += f": {e['message']}"
    else:
        text = f"state {e.get('from') or 'new'} -> {e.get('to')}{cls} at {e['at']} (by {e.get('source')})"
    return text


def timeline_svg(events: Iterable[dict[str, Any]], *, href: Callable[[dict[str, Any]], str | None] | None = None,
                 id_prefix: str = "tl-", title: str = "Timeline") -> str:
    """The events (``ItemTimeline.events``, or ``fold_checks`` of them) as one SVG document.

    ``href(event)`` may give a link for a mark (a path, ?query or #fragment in the workbench; anything else is
    refused with ValueError); each mark's ``id`` is ``id_prefix`` + the event's ``anchor``."""
    dated = []
    undated = 0
    for e in events:
        start = _time(e.get("at"))
        if start is None:
            undated += 1
            continue
        end = _time(e.get("until")) if e.get("until") else None
        dated.append((start, max(start, end if end is not None else start), e))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="11">',
           f"<title>{_x(title)}</title>"]
    if not dated:
        out.append(f'<text x="{LEFT}" y="{AXIS_Y}">no captures, checks or state changes</text>')
    else:
        t0 = min(s for s, _, _ in dated)
        t1 = max(e for _, e, _ in dated)
        if t1 - t0 < 60:                      # one moment: an hour around it
            t0, t1 = t0 - 1800, t1 + 1800
        # A little room on the left, more on the right: the state the item is in now gets room for its name.
        span_t = t1 - t0
        t0, t1 = t0 - span_t * 0.02, t1 + span_t * 0.08
        span = WIDTH - LEFT - RIGHT

        def x(t: float) -> float:
            return LEFT + (t - t0) / (t1 - t0) * span

        out += _lanes()
        out += _state_band(dated, x, x(t1))
        for start, end, e in dated:
            out.append(_mark(e, x(start), x(end), href, id_prefix))
        out += _axis(t0, t1, x)
    out += _legend(undated)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _lanes() -> list[str]:
    names = [("state", BAND_Y + BAND_H / 2), ("changes", LANES["transition"]), ("captures", LANES["capture"]),
             ("checks", LANES["check"])]
    return [f'<text x="8" y="{_num(y + 4)}" fill="#333">{name}</text>' for name, y in names]


def _state_band(dated: list[tuple[float, float, dict[str, Any]]], x: Callable[[float], float],
                right: float) -> list[str]:
    """The item's state from each change to the next: a stretch coloured and named by state."""
    changes = [(start, e) for start, _, e in dated if e["event"] == "transition"]
    out = [f'<rect x="{LEFT}" y="{BAND_Y}" width="{_num(right - LEFT)}" height="{BAND_H}" fill="none" '
           f'stroke="#bbb"/>']
    for i, (start, e) in enumerate(changes):
        x0 = x(start)
        x1 = x(changes[i + 1][0]) if i + 1 < len(changes) else right
        state = str(e.get("to") or "")
        colour = STATE_COLOURS.get(state, UNKNOWN_COLOUR)
        name = state + (f" ({e['class']})" if e.get("class") else "")
        until = f" until {changes[i + 1][1]['at']}" if i + 1 < len(changes) else ""
        out.append(f'<g class="state state-{_x(_NOT_ID.sub("_", state))}"><title>{_x(name)} from {_x(e["at"])}'
                   f'{_x(until)}</title>'
                   f'<rect x="{_num(x0)}" y="{BAND_Y}" width="{_num(max(x1 - x0, 1.0))}" height="{BAND_H}" '
                   f'fill="{colour}" fill-opacity="0.25" stroke="{colour}"/>')
        # The name where it fits (about 6.5 px a character at this size); the tooltip always holds it.
        if x1 - x0 >= 6.5 * len(state) + 6:
            out.append(f'<text x="{_num(x0 + 3)}" y="{BAND_Y + BAND_H - 6}" fill="#000">{_x(state)}</text>')
        out.append("</g>")
    return out


def _mark(e: dict[str, Any], x0: float, x1: float, href: Callable[[dict[str, Any]], str | None] | None,
          id_prefix: str) -> str:
    kind = e["event"] if e["event"] in LANES else "transition"
    y = LANES[kind]
    if kind == "capture":
        state = OUTCOME_STATES.get(str(e.get("result")), "")
        filled = e.get("result") == "ok"
    elif kind == "check":
        state = str(e.get("result") or "")
        filled = state == "live"
    else:
        state = str(e.get("to") or "")
        filled = True
    colour = STATE_COLOURS.get(state, UNKNOWN_COLOUR)
    paint = f'fill="{colour if filled else "#fff"}" stroke="{colour}" stroke-width="2"'
    if kind == "capture":
        shape = f'<circle cx="{_num(x0)}" cy="{y}" r="{MARK}" {paint}/>'
    elif kind == "check":
        width = max(x1 - x0, 0.0) + 2 * MARK - 2
        shape = f'<rect x="{_num(x0 - MARK + 1)}" y="{y - MARK + 1}" width="{_num(width)}" ' \
                f'height="{2 * MARK - 2}" {paint}/>'
    else:
        points = " ".join(f"{_num(px)},{_num(py)}" for px, py in
                          ((x0, y - MARK - 1), (x0 + MARK + 1, y), (x0, y + MARK + 1), (x0 - MARK - 1, y)))
        shape = f'<polygon points="{points}" {paint}/>'
    body = f"<title>{_x(_describe(e))}</title>{shape}"
    link = href(e) if href else None
    if link:
        body = f'<a href="{_x(_safe_href(link))}">{body}</a>'
    return f'<g class="mark mark-{kind}" id="{_x(_id(id_prefix, e.get("anchor")))}">{body}</g>'


def _axis(t0: float, t1: float, x: Callable[[float], float]) -> list[str]:
    """The time axis: five ticks over the span, each labelled with its time in UTC."""
    out = [f'<line x1="{LEFT}" y1="{AXIS_Y}" x2="{_num(x(t1))}" y2="{AXIS_Y}" stroke="#333"/>']
    ticks = 5
    for i in range(ticks):
        t = t0 + (t1 - t0) * i / (ticks - 1)
        tx = x(t)
        anchor = "start" if i == 0 else "end" if i == ticks - 1 else "middle"
        label = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")
        out.append(f'<line x1="{_num(tx)}" y1="{AXIS_Y}" x2="{_num(tx)}" y2="{AXIS_Y + 5}" stroke="#333"/>')
        out.append(f'<text x="{_num(tx)}" y="{AXIS_Y + 18}" text-anchor="{anchor}">{label}</text>')
    out.append(f'<text x="{_num(x(t1))}" y="{AXIS_Y + 32}" text-anchor="end" fill="#555">UTC</text>')
    return out


def _legend(undated: int) -> list[str]:
    y = HEIGHT - 26
    grey = 'stroke="#333" stroke-width="2"'
    out = [f'<g class="legend"><circle cx="{LEFT + 4}" cy="{y - 4}" r="{MARK - 1}" fill="#333" {grey}/>'
           f'<text x="{LEFT + 14}" y="{y}">capture</text>',
           f'<rect x="{LEFT + 70}" y="{y - 8}" width="9" height="9" fill="#333" {grey}/>'
           f'<text x="{LEFT + 84}" y="{y}">check (a bar: a run of equal checks)</text>',
           f'<polygon points="{LEFT + 300},{y - 10} {LEFT + 306},{y - 4} {LEFT + 300},{y + 2} {LEFT + 294},{y - 4}" '
           f'fill="#333" {grey}/><text x="{LEFT + 312}" y="{y}">state change</text>',
           f'<text x="{LEFT}" y="{y + 18}">filled: a live answer or an ok capture; hollow: anything else. '
           f'Colours: live green, changed orange, gone red, unreachable grey.</text></g>']
    if undated:
        out.append(f'<text x="{LEFT}" y="{AXIS_Y + 32}">{undated} event(s) without a readable time, not drawn</text>')
    return out
