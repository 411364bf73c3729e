"""The chat WebSocket consumer (filled in by the realtime work)."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = "chat.none"

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=4401)
