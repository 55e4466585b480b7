"""UX telemetry: what the chat page reports about itself, reduced to bounded labels.

``ux_heartbeat_total`` is labelled by the kind of client, never by the raw
User-Agent (an unbounded value). The kinds are a fixed, small vocabulary.
"""

from __future__ import annotations

import re

USER_AGENT_TYPES = ("desktop", "mobile", "tablet", "bot", "other")

# Automation counts as "bot": headless browsers, crawlers, command-line clients.
_BOT = re.compile(
    r"bot|crawl|spider|slurp|headless|curl|wget|python|httpclient|okhttp|java/|go-http|node",
    re.IGNORECASE,
)
_TABLET = re.compile(r"ipad|tablet|playbook|silk|(android(?!.*mobile))", re.IGNORECASE)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|windows phone|blackberry|opera mini", re.IGNORECASE)
_BROWSER = re.compile(r"^mozilla/|^opera/", re.IGNORECASE)


def user_agent_type(user_agent: str | None) -> str:
    """One of ``USER_AGENT_TYPES`` for a User-Agent header (missing or odd = "other")."""
    ua = (user_agent or "").strip()[:512]
    if not ua:
        return "other"
    if _BOT.search(ua):
        return "bot"
    if _TABLET.search(ua):
        return "tablet"
    if _MOBILE.search(ua):
        return "mobile"
    if _BROWSER.search(ua):
        return "desktop"
    return "other"
