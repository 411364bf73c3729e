"""An asyncio client for the chat server, for bots and scripts.

    async with ChatClient("http://127.0.0.1:8000") as client:
        await client.login("bot", "secret")
        client.on("message", lambda event: print(event["message"]["content"]))
        await client.connect()
        ack = await client.send(None, "hello, lobby")

See clients/python/README.md for what it guarantees.
"""

from chatclient.backoff import Backoff, CloseAction, close_action
from chatclient.client import ChatClient
from chatclient.errors import ChatError, LoggedOut
from chatclient.types import (
    Ack,
    Channel,
    ConnectionEvent,
    ConnectionState,
    Event,
    HistoryPage,
    Message,
    Reaction,
    ReadState,
    Tokens,
    User,
)

__all__ = [
    "Ack",
    "Backoff",
    "Channel",
    "ChatClient",
    "ChatError",
    "CloseAction",
    "ConnectionEvent",
    "ConnectionState",
    "Event",
    "HistoryPage",
    "LoggedOut",
    "Message",
    "Reaction",
    "ReadState",
    "Tokens",
    "User",
    "close_action",
]
