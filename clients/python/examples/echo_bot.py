"""An echo bot: answers "echo: <content>" as a reply.

In the lobby it answers the messages that mention it (``@botname``); in a
channel it is a member of (``--channel`` joins one at start; direct
channels count), it answers every message. It never answers itself. It keeps
running through server restarts: the client reconnects, catches up on what
was said meanwhile, and answers that too.

    python clients/python/examples/echo_bot.py --url http://127.0.0.1:8000 \\
        --username bot --password '...' [--channel general]

The password may also come from the CHAT_PASSWORD environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

try:
    from chatclient import ChatClient, ChatError, Event
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from chatclient import ChatClient, ChatError, Event

MAX_CONTENT = 1000  # code points, the server's limit
logger = logging.getLogger("echo_bot")


def answer_for(event: Event, me: str) -> str | None:
    """The echo for a message event, or None when the bot should stay quiet."""
    message = event["message"]
    if message["deleted"] or message["username"].lower() == me.lower():
        return None
    mentioned = me.lower() in (name.lower() for name in message["mentions"])
    if message["channel"] is None and not mentioned:
        return None
    return f"echo: {message['content']}"[:MAX_CONTENT]


async def run(url: str, username: str, password: str, channels: list[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ChatClient(url) as client:
        user = await client.login(username, password)
        me = user["username"]
        for channel in channels:
            await client.join(channel)

        async def echo(event: Event) -> None:
            text = answer_for(event, me)
            if text is None:
                return
            message = event["message"]
            try:
                await client.send(message["channel"], text, reply_to=message["id"])
            except ChatError as error:  # e.g. removed from the channel meanwhile
                logger.warning("could not answer %s: %s", message["id"], error)

        client.on("message", echo)
        client.on("connection", lambda event: logger.info("connection: %s", event["state"]))
        await client.connect()
        logger.info("echo bot connected as %s", me)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", default=os.environ.get("CHAT_PASSWORD"))
    parser.add_argument("--channel", action="append", default=[], help="join this channel at start")
    args = parser.parse_args()
    if not args.password:
        parser.error("--password (or CHAT_PASSWORD) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(args.url, args.username, args.password, args.channel))


if __name__ == "__main__":
    main()
