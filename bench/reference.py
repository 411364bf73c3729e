"""The benchmark's reference: a bare ``websockets`` broadcast server speaking the chat's frames.

Runs on this machine are comparable only as ratios, so ``bench/run`` measures
this server in the same invocation as the chat server and quotes every figure
against it. It stores nothing and checks nothing (no token, no membership
check on send, no rate limit, no idempotency), but the load tool
(``bench/client.py``) cannot tell it from the chat server in the scenarios it
runs here:

- ``/api/ws/{username}?token=...`` (the token is ignored) answers ``ready``
  with the user's channels, then a ``history`` frame with ``reason``
  ``"connect"`` (and no messages: nothing is stored);
- a ``message`` frame (or a plain text frame, a lobby message) gets an
  ``ack`` shaped like the chat server's and a ``message`` frame, the
  contract's message object, sent with ``websockets``' ``broadcast`` to every
  connection of a member of its channel (every connection for the lobby),
  with ``seq`` counted per stream in memory;
- ``{"type": "ping"}`` gets ``pong``; every other frame is ignored;
- ``GET /api/health`` answers 200 over plain HTTP, for the orchestrator's
  start-up probe.

Who is in which channel comes from a JSON file of ``{username: [channel
names]}`` read once at start (``--members``), which the orchestrator dumps
from a database seeded exactly as the chat server's (``write_members``), so
both servers hand each user the same channels. Its WebSocket settings are
``bin/server``'s: 64 KiB frames, no compression, pings every 20 s.

One process, one event loop (uvloop, as ``bin/server`` runs uvicorn on),
pinned to one core by the caller.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote

import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

WS_PREFIX = "/api/ws/"
MAX_FRAME = 65536  # bin/server's --ws-max-size
USER_NAMESPACE = uuid.UUID("6f1c0a52-3c1e-4a43-9a5e-0d7f0e8b2a11")  # a stable id per username


def timestamp() -> str:
    """Now, as the contract writes times: ISO 8601, UTC, milliseconds."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Hub:
    """Who is connected, who belongs where, and each stream's last seq; nothing else."""

    def __init__(self, members: dict[str, list[str]]) -> None:
        # Names are case-insensitive, as in the chat server; frames show the stored spelling.
        self.channels_of = {
            name.lower(): sorted(channels, key=str.lower) for name, channels in members.items()
        }
        self.spelling = {c.lower(): c for channels in members.values() for c in channels}
        self.usernames = {name.lower(): name for name in members}
        self.everyone: set[ServerConnection] = set()
        self.subscribers: dict[str, set[ServerConnection]] = {name: set() for name in self.spelling}
        self.seq: dict[str, int] = {}

    def join(self, connection: ServerConnection, channels: list[str]) -> None:
        self.everyone.add(connection)
        for name in channels:
            self.subscribers[name.lower()].add(connection)

    def leave(self, connection: ServerConnection, channels: list[str]) -> None:
        self.everyone.discard(connection)
        for name in channels:
            self.subscribers[name.lower()].discard(connection)

    def post(self, sender: ServerConnection, username: str, channel: object, content: str, client_id: object):
        """Number the message in its stream and send it to the stream's connections; the ack frame."""
        if isinstance(channel, str) and channel:
            key = channel.lower()
            channel = self.spelling.get(key, channel)
            targets = self.subscribers.get(key, ())
        else:
            key, channel, targets = "", None, self.everyone
        seq = self.seq.get(key, 0) + 1
        self.seq[key] = seq
        message_id = str(uuid.uuid4())
        message = {
            "id": message_id,
            "seq": seq,
            "rev": seq,
            "channel": channel,
            "username": username,
            "user_id": str(uuid.uuid5(USER_NAMESPACE, username.lower())),
            "content": content,
            "created_at": timestamp(),
            "client_id": client_id,
            "reply_to": None,
            "edited_at": None,
            "deleted": False,
            "reactions": [],
            "mentions": [],
        }
        broadcast(targets, orjson.dumps({"type": "message", "message": message}), text=True)
        return {"type": "ack", "client_id": client_id, "id": message_id, "seq": seq, "rev": seq}


def ready_frame(hub: Hub, username: str, channels: list[str]) -> dict:
    """The chat server's ``ready`` shape; seeded users are invisible, so nobody is ``online``."""
    user = {
        "id": str(uuid.uuid5(USER_NAMESPACE, username.lower())),
        "username": username,
        "status": "offline",
        "is_online": False,
        "last_seen": None,
        "date_joined": None,
        "email": f"{username.lower()}@seed.invalid",
    }
    unread = {
        name: {"last_read_seq": 0, "last_seq": hub.seq.get(name.lower(), 0), "unread": 0, "mentions": 0}
        for name in ["", *channels]
    }
    return {"type": "ready", "user": user, "channels": channels, "online": [], "unread": unread}


CONNECT_HISTORY = orjson.dumps({"type": "history", "reason": "connect", "messages": [], "has_more": False})
PONG = orjson.dumps({"type": "pong"})


def make_handler(hub: Hub):
    async def handler(connection: ServerConnection) -> None:
        path = connection.request.path.split("?", 1)[0]
        username = unquote(path.removeprefix(WS_PREFIX).strip("/"))
        username = hub.usernames.get(username.lower(), username)
        channels = hub.channels_of.get(username.lower(), [])
        hub.join(connection, channels)
        try:
            await connection.send(orjson.dumps(ready_frame(hub, username, channels)), text=True)
            await connection.send(CONNECT_HISTORY, text=True)
            async for data in connection:
                if isinstance(data, bytes):
                    continue
                try:
                    frame = orjson.loads(data)
                except orjson.JSONDecodeError:
                    frame = None
                if not isinstance(frame, dict):  # plain text: a lobby message, as in the chat server
                    ack = hub.post(connection, username, None, data.strip(), None)
                elif frame.get("type") == "message":
                    ack = hub.post(
                        connection,
                        username,
                        frame.get("channel"),
                        frame.get("content"),
                        frame.get("client_id"),
                    )
                elif frame.get("type") == "ping":
                    await connection.send(PONG, text=True)
                    continue
                else:
                    continue
                await connection.send(orjson.dumps(ack), text=True)
        except ConnectionClosed:
            pass
        finally:
            hub.leave(connection, channels)

    return handler


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    """``/api/health`` over plain HTTP; a WebSocket only on ``/api/ws/...``."""
    path = request.path.split("?", 1)[0]
    if path == "/api/health":
        return connection.respond(HTTPStatus.OK, '{"status":"ok"}\n')
    if not path.startswith(WS_PREFIX):
        return connection.respond(HTTPStatus.NOT_FOUND, "Not found\n")
    return None


async def serve_until_stopped(host: str, port: int, members: dict[str, list[str]]) -> None:
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with serve(
        make_handler(Hub(members)),
        host,
        port,
        process_request=process_request,
        compression=None,
        max_size=MAX_FRAME,
        ping_interval=20,
        ping_timeout=20,
        server_header=None,
    ):
        await stop.wait()


def write_members(path: str | Path) -> None:
    """Dump ``{username: [channel names]}`` of every user from the configured database.

    Run inside Django (``manage.py shell -c``) on a database ``seed_chat``
    filled, so the reference is handed the memberships the chat server reads.
    """
    from accounts.models import User
    from chatrooms.models import Membership

    members: dict[str, list[str]] = {name: [] for name in User.objects.values_list("username", flat=True)}
    for username, channel in Membership.objects.values_list("user__username", "channel__name"):
        members[username].append(channel)
    Path(path).write_text(json.dumps(members))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--members", type=Path, help="JSON {username: [channel names]}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    members = json.loads(args.members.read_text()) if args.members else {}
    uvloop.run(serve_until_stopped(args.host, args.port, members))


if __name__ == "__main__":
    main()
