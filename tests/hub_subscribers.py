"""A stand-in for a socket subscribed to the process hub: it keeps the events it is handed."""

from __future__ import annotations


class RecordingSubscriber:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def hub_event(self, event: dict) -> None:
        self.events.append(event)

    async def server_close(self, code: int) -> None:
        pass
