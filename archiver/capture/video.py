"""Video through yt-dlp (Periscope, X broadcasts, YouTube, any site yt-dlp supports), used as a library.

yt-dlp downloads into a private temporary directory; the files are then streamed into the WARC in
fixed-size chunks (a multi-GB video is never read into memory): the info JSON verbatim as a ``metadata``
record, the media file, thumbnail and subtitles as ``resource`` records. The target URI is the real media
URL when the file is one unmodified HTTP stream, and an ``urn:`` URI when yt-dlp merged or remuxed.
Merging uses ffmpeg with bit-exact flags so the same source gives the same bytes.
"""
from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import shutil
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import yt_dlp
from yt_dlp.globals import plugin_dirs, plugin_ies, plugin_pps
from yt_dlp.postprocessor import PostProcessor
from yt_dlp.utils import DownloadCancelled, DownloadError

from archiver.capture import platforms
from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.capture.platforms import PlatformPath
from archiver.urls import BlockedAddress
from archiver.store.warc import CaptureWarc
from archiver.capture import auth, guard, network
from archiver.capture.base import CaptureResult

# -bitexact (codecs) and +bitexact (muxer): no encoder version strings or timestamps in the output.
BITEXACT = ["-bitexact", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]


class _Cut(DownloadCancelled):
    """Raised from the progress hook when a cap is reached; ``why`` is the failure class."""

    def __init__(self, why: str, message: str):
        super().__init__(message)
        self.why = why


@dataclass
class VideoDownload:
    info: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)   # {path, kind, uri, content_type, truncated}
    cut: str | None = None          # too-large | timeout
    cut_message: str | None = None
    log: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # connections the private-network guard refused
    moved: dict[str, str] = field(default_factory=dict)  # where yt-dlp wrote a file -> where it moved it


class _Log:
    """yt-dlp's messages, kept for provenance instead of printed."""

    def __init__(self, sink: list[str]):
        self.sink = sink

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug] "):
            self.sink.append(msg)

    def info(self, msg: str) -> None:
        self.sink.append(msg)

    def warning(self, msg: str) -> None:
        self.sink.append(f"WARNING: {msg}")

    def error(self, msg: str) -> None:
        self.sink.append(msg)


def classify_error(message: str) -> tuple[str, bool]:
    """(failure class, retryable) for a yt-dlp error message."""
    m = message.lower()
    if "unsupported url" in m:
        return "unsupported", False
    # X Spaces (yt-dlp's twitter:spaces words them so): the Space is there, its recording is not (and will not
    # be); not started yet, or ended and its recording still being made: a later try can get it.
    if "replay is disabled" in m:
        return "replay-disabled", False
    if "space not started yet" in m:
        return "not-started", True
    if "not downloadable yet" in m:
        return "not-yet-available", True
    if "age" in m and ("confirm your age" in m or "age-restricted" in m or "age restricted" in m):
        return "age-restricted", False
    if "private" in m or "members-only" in m or "protected" in m:
        return "protected", False
    gone = ("has been removed", "no longer available", "no longer exists", "been deleted", "was deleted",
            "does not exist", "not available", "unavailable", "not found", "404", "410", "has ended", "terminated", "gone")
    if any(g in m for g in gone):
        return "gone", False
    # yt-dlp's TikTok extractor says this for statusCode 10204, which TikTok answers for a removed video as for one
    # withheld from the viewer's region: either way not there for this capture host, and no retry will change that.
    # The message is kept as yt-dlp wrote it, so a reader can tell.
    if "blocked from accessing this post" in m:
        return "gone", False
    if "timed out" in m or "timeout" in m:
        return "timeout", True
    if any(n in m for n in ("unable to download", "connection", "name or service", "temporary failure",
                            "network is unreachable", "ssl", "certificate")):
        return "network", True
    return "extractor", True


# yt-dlp's request handlers that connect through Python's socket module (see _GuardedYoutubeDL).
PYTHON_SOCKET_HANDLERS = frozenset({"Urllib", "Requests", "Websockets"})


class _CheckFormats(PostProcessor):
    """Refuses, before anything is downloaded, formats whose URLs lead into a private network: ffmpeg, which
    yt-dlp hands live streams and some manifests to, connects by itself, out of sight of ``guard.armed``."""

    def __init__(self, policy: guard.Policy):
        super().__init__()
        self._policy = policy

    def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        checked: set[tuple[str, str]] = set()
        for url in _format_urls(info):
            parts = urlsplit(url)
            if (parts.scheme, parts.netloc) not in checked:  # one lookup per host, not per fragment
                checked.add((parts.scheme, parts.netloc))
                self._policy.check_url(url)
        return [], info


def _format_urls(info: dict[str, Any]) -> Iterator[str]:
    for fmt in [info, *(info.get("requested_formats") or [])]:
        for key in ("url", "manifest_url", "fragment_base_url"):
            if isinstance(fmt.get(key), str):
                yield fmt[key]
        fragments = fmt.get("fragments")
        if isinstance(fragments, list):  # yt-dlp makes some of them lazily (a callable): those it fetches itself
            yield from (f["url"] for f in fragments if isinstance(f, dict) and isinstance(f.get("url"), str))


class _NoteMoves(PostProcessor):
    """Notes where yt-dlp is about to move the files it wrote: thumbnails and subtitles are written under the
    default template and moved to their own ("thumbnail", "subtitle" in ``ytdlp_params``) after the download,
    while the info dict keeps their first path."""

    def __init__(self, sink: dict[str, str]):
        super().__init__()
        self._sink = sink

    def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        self._sink.update(info.get("__files_to_move") or {})
        return [], info


class _GuardedYoutubeDL(yt_dlp.YoutubeDL):
    """yt-dlp under the private-network guard: every URL it opens (pages, APIs, media, fragments) is refused
    when it names a private address, and so are the formats it is about to download (``_CheckFormats``).
    Names are checked on the address connected to, by the audit hook ``guard.armed`` puts in place."""

    def __init__(self, params: dict[str, Any], policy: guard.Policy):
        super().__init__(params)
        self._policy = policy
        if not policy.open:
            self.add_post_processor(_CheckFormats(policy), when="before_dl")

    def urlopen(self, req: Any) -> Any:
        url = req if isinstance(req, str) else getattr(req, "url", None) or getattr(req, "full_url", "")
        self._policy.check_url_literal(url)
        return super().urlopen(req)

    def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
        if not self._policy.open:
            # Only handlers whose sockets Python opens, where the audit hook sees them: curl_cffi (browser
            # impersonation, when installed) connects from C.
            handlers = [h for h in handlers if h.RH_KEY in PYTHON_SOCKET_HANDLERS]
        return super().build_request_director(handlers, preferences)


@contextmanager
def _youtube_dl(params: dict[str, Any], settings: Settings) -> Iterator[tuple[yt_dlp.YoutubeDL, list[BlockedAddress]]]:
    """A guarded YoutubeDL, with the CA environment, and the list the guard adds refused connections to."""
    policy = guard.Policy.from_settings(settings)
    # yt-dlp loads plugins once per process, from these directories, when the first YoutubeDL is made.
    plugin_dirs.value = ["default"] if settings["video"]["plugins"] else []
    with _ca_environment(settings), guard.armed(policy) as refusals, _GuardedYoutubeDL(params, policy) as ydl:
        yield ydl, refusals


def _failure(exc: DownloadError, refusals: list[BlockedAddress]) -> CaptureFailed:
    """The CaptureFailed for a yt-dlp error: "blocked" when the guard refused a connection (yt-dlp reports that
    as a network error of its own), otherwise the class its message suggests."""
    if refusals:
        return refusals[0]
    cls, retryable = classify_error(str(exc))
    return CaptureFailed(cls, _clean(str(exc)), retryable=retryable)


def ytdlp_params(settings: Settings, workdir: Path, hook: Any, log: list[str]) -> dict[str, Any]:
    v = settings["video"]
    params: dict[str, Any] = {
        "outtmpl": {"default": str(workdir / "%(id).80s.%(format_id).40s.%(ext)s"),
                    "thumbnail": str(workdir / "thumb.%(id).80s.%(ext)s"),
                    "subtitle": str(workdir / "subs.%(id).80s.%(ext)s")},
        "format": v["format"],
        "merge_output_format": v["merge_output_format"],
        "postprocessor_args": {"ffmpeg_o": BITEXACT},
        "writethumbnail": v["thumbnail"],
        "writesubtitles": v["subtitles"],
        "subtitleslangs": ["all"],
        "noplaylist": True,
        "playlist_items": "1",
        "max_filesize": v["max_bytes"],
        "hls_prefer_native": True,     # fragment by fragment, so the caps below are checked as it goes
        "progress_hooks": [hook],
        "logger": _Log(log),
        "noprogress": True,
        "quiet": True,
        "no_warnings": False,
        "cachedir": False,
        "retries": 3,
        "fragment_retries": 3,
        "ffmpeg_location": shutil.which("ffmpeg"),
    }
    params.update(network.ytdlp_options(settings))
    site = auth.current()
    if site is not None:
        # The capture's site credentials, as a cookie file of that site's cookies only, in this capture's own
        # temporary directory (yt-dlp rewrites the file when done; it goes with the directory). yt-dlp's cookie
        # jar sends each cookie to the hosts its domain covers, as a browser does.
        params["cookiefile"] = str(auth.write_cookie_file(site, workdir))
    return params


def _download(url: str, settings: Settings, workdir: Path, deadline: float) -> VideoDownload:
    """Run yt-dlp (blocking; called in a worker thread). Raises CaptureFailed when it produced nothing."""
    result = VideoDownload()
    max_bytes = settings["video"]["max_bytes"]

    def hook(progress: dict[str, Any]) -> None:
        done = progress.get("downloaded_bytes") or 0
        if done > max_bytes:
            raise _Cut("too-large", f"more than video.max_bytes ({max_bytes}) downloaded")
        if time.monotonic() > deadline:
            raise _Cut("timeout", "still downloading at video.max_seconds (a live stream is recorded up to "
                                  "the cap)")

    # A live stream is handed to ffmpeg, which reports no progress to the hook above; at the deadline the
    # watchdog asks our ffmpeg children to finish (SIGINT makes ffmpeg write a proper trailer and exit), so a
    # live broadcast is recorded up to the cap and the file stays playable.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _interrupt_ffmpeg_children, args=(result,))
    watchdog.daemon = True
    watchdog.start()
    params = ytdlp_params(settings, workdir, hook, result.log)
    result.options = {k: v for k, v in params.items() if k not in ("progress_hooks", "logger")}
    try:
        with _youtube_dl(params, settings) as (ydl, refusals):
            ydl.add_post_processor(_NoteMoves(result.moved), when="post_process")
            # Extraction and download apart, so that the metadata survives a download that is cut short.
            try:
                info = ydl.extract_info(url, download=False)
            except DownloadError as exc:
                raise _failure(exc, refusals) from None
            try:
                info = ydl.process_ie_result(info, download=True)
            except _Cut as cut:
                result.cut, result.cut_message = cut.why, str(cut)
            except DownloadError as exc:
                if result.cut is None:  # not our own watchdog stopping a live stream
                    raise _failure(exc, refusals) from None
            # yt-dlp repeats the cookies it sent in each format ("cookies", "http_headers"): never into the WARC.
            result.info = auth.scrub(ydl.sanitize_info(info), auth.current())
            # Refused yet not fatal to yt-dlp (a fragment skipped, a thumbnail missing): the video is incomplete.
            result.refused = [r.message for r in refusals]
    finally:
        watchdog.cancel()
    if result.cut is None and any("larger than max-filesize" in line for line in result.log):
        # yt-dlp knew the size in advance and did not start: too large, and nothing was cut short.
        result.cut = "too-large"
        result.cut_message = f"the media file is larger than video.max_bytes ({max_bytes}); not downloaded"
    result.files = _collect_files(result.info, workdir, result.cut, result.moved)
    if result.info is None and not result.files:
        raise CaptureFailed(result.cut or "extractor", result.cut_message or "yt-dlp produced nothing")
    return result


@contextmanager
def _ca_environment(settings: Settings) -> Iterator[None]:
    """yt-dlp (urllib/requests) reads extra trust from SSL_CERT_FILE: system roots + network.ca_bundle."""
    ca_file = network.ytdlp_ca_file(settings)
    if not ca_file:
        yield
        return
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = ca_file
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = previous
        os.unlink(ca_file)


def probe(url: str, settings: Settings, timeout: float) -> dict[str, Any]:
    """yt-dlp's metadata for ``url`` without downloading anything (a liveness check). Blocking: run it in a
    thread. Raises CaptureFailed with the class of yt-dlp's error (gone, protected, network...)."""
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="archiver-probe-") as workdir:
        params = ytdlp_params(settings, Path(workdir), lambda progress: None, log)
        params.update({"socket_timeout": timeout, "writethumbnail": False, "writesubtitles": False,
                       "skip_download": True, "retries": 1, "extractor_retries": 1})
        with _youtube_dl(params, settings) as (ydl, refusals):
            try:
                return ydl.sanitize_info(ydl.extract_info(url, download=False))
            except DownloadError as exc:
                raise _failure(exc, refusals) from None


def _interrupt_ffmpeg_children(result: VideoDownload) -> None:
    """Send SIGINT to the ffmpeg processes this process started (yt-dlp's live-stream downloader)."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            ppid = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and name == "ffmpeg":
            try:
                os.kill(int(stat.parent.name), signal.SIGINT)
            except ProcessLookupError:
                continue
            result.cut = "timeout"
            result.cut_message = "still recording at video.max_seconds (a live stream is recorded up to the cap)"


def _clean(message: str) -> str:
    return message.removeprefix("ERROR: ").strip()


def _collect_files(info: dict[str, Any] | None, workdir: Path, cut: str | None,
                   moved: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The files yt-dlp wrote, as records to be; ``moved`` maps where yt-dlp wrote a file to where it moved it
    (``_NoteMoves``), since a thumbnail's or a subtitle's filepath keeps naming the first."""
    moved = {Path(old): Path(new) for old, new in (moved or {}).items() if new}
    files: list[dict[str, Any]] = []
    claimed: set[Path] = set()
    if info:
        vid = f"{info.get('extractor_key', 'video')}:{info.get('id', 'unknown')}"
        for dl in info.get("requested_downloads") or []:
            path = Path(dl.get("filepath") or dl.get("_filename") or "")
            if not path.is_file():
                continue
            merged = bool(dl.get("requested_formats"))
            single_http = (not merged and dl.get("protocol") in ("http", "https") and dl.get("url")
                           and path.suffix.lstrip(".") == (dl.get("ext") or ""))
            uri = dl["url"] if single_http else f"urn:video:{vid}:{dl.get('format_id', 'best')}.{path.suffix.lstrip('.')}"
            files.append({"path": path, "kind": "media", "uri": uri, "truncated": None})
            claimed.add(path)
        for thumb in info.get("thumbnails") or []:
            path = Path(thumb.get("filepath") or "")
            path = moved.get(path, path)
            if path.is_file() and path not in claimed:
                files.append({"path": path, "kind": "thumbnail", "uri": thumb.get("url") or f"urn:thumbnail:{vid}",
                              "truncated": None})
                claimed.add(path)
        for lang, sub in (info.get("requested_subtitles") or {}).items():
            path = Path(sub.get("filepath") or "")
            path = moved.get(path, path)
            if path.is_file() and path not in claimed:
                files.append({"path": path, "kind": "subtitles", "uri": sub.get("url") or f"urn:subtitles:{vid}:{lang}",
                              "truncated": None})
                claimed.add(path)
    if cut:
        # What arrived before the cap: kept, and marked as cut, never passed off as the whole video.
        for path in sorted(workdir.glob("*.part")) + sorted(workdir.glob("*.part-Frag*")):
            if path.is_file() and path.stat().st_size and path not in claimed:
                files.append({"path": path, "kind": "media", "uri": f"urn:video:partial:{path.name}",
                              "truncated": "length" if cut == "too-large" else "time"})
    return files


def _content_type(path: Path) -> str:
    name = path.name.removesuffix(".part")
    guessed = mimetypes.guess_type(name)[0]
    return guessed or {"vtt": "text/vtt", "srt": "application/x-subrip", "webm": "video/webm",
                       "mkv": "video/x-matroska"}.get(name.rsplit(".", 1)[-1], "application/octet-stream")


async def record_video(url: str, warc: CaptureWarc, settings: Settings) -> dict[str, Any]:
    """Download ``url`` with yt-dlp and write its info JSON and files into ``warc``. Returns a summary."""
    deadline = time.monotonic() + settings["video"]["max_seconds"]
    workdir = Path(tempfile.mkdtemp(prefix="archiver-video-"))
    try:
        download = await asyncio.to_thread(_download, url, settings, workdir, deadline)
        info_id = None
        if download.info is not None:
            info_id = warc.write_metadata(f"urn:yt-dlp:info:{url}", "application/json",
                                          json.dumps(download.info, ensure_ascii=False).encode("utf-8"),
                                          refers_to_uri=url)
        written = []
        for f in download.files:
            with open(f["path"], "rb") as fh:
                record_id = warc.write_resource(f["uri"], _content_type(f["path"]), fh, concurrent_to=info_id,
                                                truncated=f["truncated"])
            written.append({"kind": f["kind"], "uri": f["uri"], "record_id": record_id,
                            "bytes": f["path"].stat().st_size, "truncated": f["truncated"]})
        info = download.info or {}
        # What becomes provenance: yt-dlp's log and options, scrubbed like its info JSON (capture/auth.py).
        return auth.scrub({
            "url": url, "info_record_id": info_id, "files": written, "cut": download.cut,
            "cut_message": download.cut_message, "extractor": info.get("extractor_key"), "id": info.get("id"),
            "title": info.get("title"), "uploader": info.get("uploader") or info.get("channel"),
            "upload_date": info.get("upload_date"), "timestamp": info.get("timestamp"),
            "duration": info.get("duration"), "is_live": info.get("is_live"), "was_live": info.get("was_live"),
            "display_id": info.get("display_id"),
            "webpage_url": info.get("webpage_url"), "format": info.get("format"), "description": info.get("description"),
            "yt_dlp": {"version": yt_dlp.version.__version__, "options": _jsonable(download.options),
                       "plugins": _loaded_plugins()},
            "refused": download.refused,
            "log": download.log[-50:],
        }, auth.current())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _loaded_plugins() -> dict[str, str]:
    """yt-dlp plugins loaded on this host (name -> module): they can take URLs away from the built-in extractors,
    so provenance says which were there."""
    return {name: getattr(cls, "__module__", "?") for name, cls in {**plugin_ies.value, **plugin_pps.value}.items()}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


async def capture_video(url: str, warc: CaptureWarc, settings: Settings, browser: Any,
                        path: PlatformPath | None = None, item_id: str | None = None,
                        media_url: str | None = None) -> CaptureResult:
    """The page around the video (``url``, when a browser is given), then the video itself, which yt-dlp reads
    from ``media_url`` (default ``url``: a Periscope page's broadcast is read through X's API). With ``path``
    (the platform the key names) the capture is ok only when that platform's own extractor produced item
    ``item_id``; anything else is ``partial``, class ``extractor-mismatch``, with what was recorded kept."""
    page: CaptureResult | None = None
    page_problem = None
    if browser is not None:
        try:
            page = await browser.capture(url, warc)
        except CaptureFailed as exc:
            page_problem = exc
    try:
        video = await record_video(media_url or url, warc, settings)
    except CaptureFailed as exc:
        if page is None:
            raise
        # The page was recorded (for a deleted broadcast: what the page says now); the video was not.
        page.status, page.failure_class, page.failure_message = "failed", exc.failure_class, exc.message
        page.details["video"] = {"url": media_url or url, "error": exc.message, "class": exc.failure_class}
        return page
    verdict = None
    if path is not None and item_id:
        verdict = platforms.judge_ytdlp(path, item_id, {"extractor_key": video["extractor"], "id": video["id"],
                                                        "display_id": video["display_id"]})
    status, failure_class, failure_message = "ok", None, None
    if verdict is not None and not verdict.ok:
        # First, because it says the most: whatever else happened, this is not the item that was asked for.
        status, failure_class, failure_message = "partial", platforms.MISMATCH, verdict.message
    elif video["cut"]:
        status, failure_class, failure_message = "partial", video["cut"], video["cut_message"]
    elif video["refused"]:
        status, failure_class = "partial", "blocked"
        failure_message = f"{len(video['refused'])} connection(s) refused: {video['refused'][0]}"
    elif not any(f["kind"] == "media" for f in video["files"]):
        status, failure_class, failure_message = "partial", "incomplete", "yt-dlp wrote no media file"
    elif page_problem is not None:
        status, failure_class = "partial", "incomplete"
        failure_message = f"the page around the video was not recorded: {page_problem.message}"
    elif page is not None and page.status != "ok":
        status, failure_class, failure_message = "partial", page.failure_class, page.failure_message
    text = "\n".join(p for p in (video.get("title"), video.get("description"), page.text if page else None) if p)
    details = dict(page.details) if page else {"network": network.describe(settings, "video")}
    details["video"] = video
    if verdict is not None:
        details["platform"] = verdict.as_dict()
    details["video_network"] = network.describe(settings, "video")
    return CaptureResult(
        status=status, final_url=page.final_url if page else video.get("webpage_url") or url,
        main_record_id=(page.main_record_id if page else video["info_record_id"]),
        http_status=page.http_status if page else None, content_type=page.content_type if page else None,
        failure_class=failure_class, failure_message=failure_message,
        title=video.get("title") or (page.title if page else None), text=text,
        outlinks=page.outlinks if page else [], details=details)
