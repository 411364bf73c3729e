"""Chat channels and their memberships."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

CHANNEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z"
# A direct channel's name: "@" and the two usernames (accounts.models.USERNAME_PATTERN) joined by "+".
DIRECT_NAME_PATTERN = r"^@[A-Za-z0-9_.-]{3,32}\+[A-Za-z0-9_.-]{3,32}\Z"
NAME_MAX_LENGTH = 66  # the longest direct name: "@" + 32 + "+" + 32
BAN_REASON_MAX_LENGTH = 500

channel_name_validator = RegexValidator(
    CHANNEL_NAME_PATTERN,
    "Use 1 to 64 letters, digits, underscores or hyphens, starting with a letter or digit.",
)


class Channel(models.Model):
    class Kind(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"
        DIRECT = "direct"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    description = models.CharField(max_length=500, blank=True, default="")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PUBLIC)
    # Null for a direct channel, which nobody owns.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="owned_channels",
    )
    # A direct channel's two users, as their ids' hex sorted and joined by ":"
    # (one id twice for notes to self); unique, so two opens make one channel.
    direct_pair = models.CharField(max_length=65, null=True, blank=True, unique=True, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="chat_channels"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("name"), name="chatrooms_channel_name_ci_unique")]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(default=timezone.now)
    # The highest position of the channel's stream the user has read: the
    # channel's position when they joined, then moved by reads and their posts.
    last_read_seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "user"], name="chatrooms_membership_unique"),
        ]
        indexes = [models.Index(fields=["user", "channel"], name="chatrooms_membership_by_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.channel_id}"


class Ban(models.Model):
    """A user kept out of a channel: removed if a member, and refused on join or add while it lasts."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channel_bans")
    reason = models.CharField(max_length=BAN_REASON_MAX_LENGTH, blank=True, default="")
    banned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "user"], name="chatrooms_ban_once")]

    def __str__(self) -> str:
        return f"{self.user_id} banned from {self.channel_id}"
