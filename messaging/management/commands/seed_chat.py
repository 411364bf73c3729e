"""``manage.py seed_chat``: bulk users, channels and messages, and optionally their access tokens."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.tokens import access_token_seconds
from messaging import seeding


class RichProgress:
    """One rich progress bar per seeding stage; silent when rich is missing."""

    def __init__(self, enabled: bool) -> None:
        self._progress = None
        self._tasks: dict[str, object] = {}
        if not enabled:
            return
        try:
            from rich.progress import Progress
        except ImportError:  # rich comes with the dev requirements; seeding works without it
            return
        self._progress = Progress(transient=False)

    def __enter__(self) -> RichProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, stage: str, total: int) -> None:
        if self._progress is not None and total:
            self._tasks[stage] = self._progress.add_task(stage, total=total)

    def advance(self, stage: str, amount: int) -> None:
        if self._progress is not None and stage in self._tasks:
            self._progress.update(self._tasks[stage], advance=amount)


class Command(BaseCommand):
    help = (
        "Create (or reuse, by name) PREFIX's users and channels and add messages in bulk; "
        "--tokens writes {username: access token} JSON for benchmark clients."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--users", type=int, default=100)
        parser.add_argument("--channels", type=int, default=10)
        parser.add_argument("--members-per-channel", type=int, default=10)
        parser.add_argument("--messages", type=int, default=1000)
        parser.add_argument(
            "--prefix", default="seed", help="names: PREFIX_000000 users, PREFIX-room0000 channels"
        )
        parser.add_argument("--password", default="seed-Password-123", help="shared by every new seeded user")
        parser.add_argument(
            "--status",
            default="online",
            choices=["online", "away", "offline"],
            help="chosen status of new users (offline: invisible, no presence broadcasts)",
        )
        parser.add_argument("--tokens", type=Path, help="write {username: access token} JSON here")
        parser.add_argument(
            "--token-seconds", type=int, help="access token lifetime (default: CHAT_ACCESS_TOKEN_SECONDS)"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args, **options) -> None:
        token_seconds = options["token_seconds"] or access_token_seconds()
        if token_seconds <= 0:
            raise CommandError("--token-seconds must be positive")
        started = time.perf_counter()
        with RichProgress(enabled=not options["no_progress"] and options["verbosity"] > 0) as progress:
            try:
                result = seeding.seed_chat(
                    users=options["users"],
                    channels=options["channels"],
                    members_per_channel=options["members_per_channel"],
                    messages=options["messages"],
                    prefix=options["prefix"],
                    password=options["password"],
                    status=options["status"],
                    progress=progress,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            tokens = None
            if options["tokens"]:
                tokens = seeding.issue_seed_tokens(
                    result.users, lifetime=timedelta(seconds=token_seconds), progress=progress
                )
        if tokens is not None:
            options["tokens"].parent.mkdir(parents=True, exist_ok=True)
            options["tokens"].write_text(json.dumps(tokens))
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"seed_chat {options['prefix']}: {len(result.users)} users ({result.users_created} new), "
            f"{len(result.channels)} channels ({result.channels_created} new), "
            f"{result.memberships_created} new memberships, {result.messages_created} messages"
            + (f", {len(tokens)} tokens ({token_seconds} s) in {options['tokens']}" if tokens else "")
            + f" in {elapsed:.1f} s"
        )
