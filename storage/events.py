"""What an event log tells a reader that fell behind, whatever keeps the log."""

from __future__ import annotations


class EventsLost(Exception):
    """The events after the asked id are no longer kept: the reader must start over."""
