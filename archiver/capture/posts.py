"""Posts of the platforms captured by their own answers beyond X: Mastodon and the fediverse, Bluesky, Telegram.

One job kind ("post") for all of them; the key's prefix (``fedi:``, ``bluesky:``, ``telegram:``) names the platform,
and ``MODULES`` the module under archiver/capture/ that captures and checks its posts. Each such module has

    async def capture(item_id: str, url: str, warc: CaptureWarc, settings: Settings, browser) -> CaptureResult
    async def check(item_id: str, settings: Settings) -> CheckResult     # liveness, for `watch` and `check`

where ``item_id`` is the key after the colon. A capture's ``details["post"]`` becomes ``provenance["post"]`` and the
index's ``posts`` row (store/index.py), so it holds at least:

    platform      the key's prefix                        availability  available | deleted | not-found | ...
    id            the key's id part                       author, author_name, text, posted_at, edited_at,
    fingerprint   for change detection (fingerprint.py)   lang, media_count, reply_to, quoted, url

and whatever is the platform's own beside them (labels, edit history, views...). Loaded lazily: a worker imports
only the module of the post in hand.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from archiver.config import Settings
from archiver.errors import CaptureFailed
from archiver.store.warc import CaptureWarc

# Key prefix -> module under archiver.capture.
MODULES: dict[str, str] = {
    "fedi": "fediverse",
    "telegram": "telegram",
    "bluesky": "bluesky",
}


class UnknownPlatform(CaptureFailed):
    """A post key whose platform archiver has no module for (a key from a newer archiver, or a typo)."""

    def __init__(self, key: str) -> None:
        super().__init__("unsupported-platform", f"no capture path for the post key {key!r}", retryable=False)


def _module(key: str) -> tuple[ModuleType, str]:
    platform, _, item_id = key.partition(":")
    name = MODULES.get(platform)
    if name is None or not item_id:
        raise UnknownPlatform(key)
    return importlib.import_module(f"archiver.capture.{name}"), item_id


async def capture_post(key: str, url: str, warc: CaptureWarc, settings: Settings, browser: Any) -> Any:
    """Capture the post ``key`` names into ``warc`` (a CaptureResult)."""
    module, item_id = _module(key)
    return await module.capture(item_id, url, warc, settings, browser)


async def check_post(key: str, settings: Settings) -> Any:
    """Whether the post ``key`` names is still there (a liveness.CheckResult)."""
    module, item_id = _module(key)
    return await module.check(item_id, settings)
