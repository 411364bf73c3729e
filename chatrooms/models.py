"""Chat channels and their memberships."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

CHANNEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z"

channel_name_validator = RegexValidator(
    CHANNEL_NAME_PATTERN,
    "Use 1 to 64 letters, digits, underscores or hyphens, starting with a letter or digit.",
)


class Channel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, validators=[channel_name_validator])
    description = models.CharField(max_length=500, blank=True, default="")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_channels"
    )
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

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "user"], name="chatrooms_membership_unique"),
        ]
        indexes = [models.Index(fields=["user", "channel"], name="chatrooms_membership_by_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.channel_id}"
