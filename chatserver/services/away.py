"""Away mode: whether the widget should say "we are away" (outside business hours, or no agent
online) and ask for an email address. "An agent is online" is agent availability's answer
(services/availability.py: a console open on a live instance, and not away), asked through
`chatserver.widget_setup.agents_available(app)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from .widget_settings import Snapshot, is_open, next_opening


async def widget_config(
    snapshot: Snapshot,
    agents_available: Callable[[], Awaitable[bool]],
    *,
    email_enabled: bool,
    now: dt.datetime,
) -> dict[str, Any]:
    """What the widget frame needs: the admin's settings, whether we are away right now (outside
    business hours, or nobody to answer), and whether to ask for an email address."""
    settings = snapshot.settings
    hours = settings["business_hours"]
    open_now = is_open(hours, now)
    available = await agents_available() if open_now else False
    away = not open_now or not available
    capture = settings["email_capture"]
    ask = email_enabled and (capture == "always" or (capture == "away" and away))
    return {
        "settings": settings,
        "version": snapshot.version,
        "status": {
            "open": open_now,
            "agents_available": available,
            "away": away,
            "next_open_at": None if open_now else next_opening(hours, now),
        },
        "email": {"enabled": email_enabled, "ask": ask},
    }
