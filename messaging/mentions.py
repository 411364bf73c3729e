"""``@username`` mentions: parsed on every send and edit, stored one row per user named.

A mention is ``@`` followed by the longest run of username characters, matched
ignoring case against the users who can read the channel (its members; for
the lobby, every active user), the author included. When the run names no such
user and ends in ``.``, ``-`` or ``_``, those are dropped and the rest tried
(``thanks @bob.`` names bob). At most ``MENTIONS_MAX``: the first named.
"""

from __future__ import annotations

import re

from accounts.models import User
from chatrooms.models import Membership
from messaging.models import Mention, Message

MENTIONS_MAX = 50
_RUN = re.compile(r"@([A-Za-z0-9_.-]+)")
_TRAILING = ".-_"


def _candidates(content: str) -> list[tuple[str, str]]:
    """Each ``@`` run in order: (the run, the run without trailing ``.-_``), lowercased."""
    runs = [match.group(1).lower() for match in _RUN.finditer(content)]
    return [(run, run.rstrip(_TRAILING)) for run in runs]


def _readers_named(names: set[str], *, channel_id) -> dict[str, User]:
    """The readers of the channel (None: the lobby) among users with these names (lowercased)."""
    users = User.objects.filter(username__lower__in=names)
    if channel_id is None:
        users = users.filter(is_active=True)
    else:
        users = users.filter(id__in=Membership.objects.filter(channel_id=channel_id).values("user_id"))
    return {user.username.lower(): user for user in users.only("id", "username")}


def mentioned_users(content: str, *, channel_id) -> list[User]:
    """The users ``content`` mentions, in the order first named, at most ``MENTIONS_MAX``."""
    candidates = _candidates(content)
    if not candidates:
        return []
    readers = _readers_named({name for pair in candidates for name in pair if name}, channel_id=channel_id)
    named: dict[str, User] = {}
    for run, stripped in candidates:
        user = readers.get(run) or (readers.get(stripped) if stripped != run else None)
        if user is not None and user.username.lower() not in named:
            named[user.username.lower()] = user
            if len(named) == MENTIONS_MAX:
                break
    return list(named.values())


def mentions_store(message: Message, users: list[User], *, replace: bool = True) -> list[str]:
    """Store ``message``'s mention rows (``replace``: instead of its old ones); return the names, sorted."""
    if replace:
        Mention.objects.filter(message=message).delete()
    if users:
        Mention.objects.bulk_create([Mention(message=message, user=user) for user in users])
    return sorted((user.username for user in users), key=str.lower)
