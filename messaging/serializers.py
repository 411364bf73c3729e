"""Input serializers check shape; output serializers describe the contract's message shapes.

Rendering goes through ``messaging.message_payload``, the one place
that shapes a message for REST and the WebSocket alike.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from core.timestamps import TimestampField
from messaging.models import CLIENT_ID_MAX_LENGTH, CONTENT_MAX_CODE_POINTS
from messaging.payloads import message_payload


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An integer field that refuses strings, floats and booleans instead of converting them."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def channel_name_field() -> StrictCharField:
    """A channel's name or null for the lobby, and required: shape only (the service looks it up).

    A missing channel is never the lobby, so that a client bug cannot make a
    private message public.
    """
    return StrictCharField(
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        help_text="A channel name, or null for the lobby. Required: a missing channel is never the lobby.",
    )


class MessageCreateInputSerializer(serializers.Serializer):
    """Shape only; ``message_send`` trims and measures the content and checks the channel."""

    channel = channel_name_field()
    content = StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        help_text=f"1 to {CONTENT_MAX_CODE_POINTS} code points after trimming surrounding white space.",
    )
    client_id = StrictCharField(
        required=False,
        allow_null=True,
        trim_whitespace=False,
        min_length=1,
        max_length=CLIENT_ID_MAX_LENGTH,
        default=None,
        help_text="The sender's own id for the message: resending it within 24 hours stores nothing new.",
    )
    reply_to = StrictCharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The id of a message in the same channel that this one answers.",
    )


class MessageEditInputSerializer(serializers.Serializer):
    """Shape only; ``message_edit`` applies the content rules of posting."""

    content = StrictCharField(allow_blank=True, trim_whitespace=False)


class ReactionInputSerializer(serializers.Serializer):
    """Shape only; ``reaction_add`` checks the emoji."""

    emoji = StrictCharField(
        allow_blank=True, trim_whitespace=False, help_text="1 to 32 characters: a Unicode emoji or :name:."
    )


class ReactionSerializer(serializers.Serializer):
    emoji = serializers.CharField(read_only=True)
    usernames = serializers.ListField(child=serializers.CharField(), read_only=True)


class MessageSerializer(serializers.Serializer):
    """A message as the contract shows it; needs ``channel`` and ``user`` loaded."""

    id = serializers.UUIDField(read_only=True)
    seq = serializers.IntegerField(read_only=True, min_value=1)
    channel = serializers.CharField(read_only=True, allow_null=True, help_text="Null for the lobby.")
    username = serializers.CharField(read_only=True)
    user_id = serializers.UUIDField(read_only=True)
    content = serializers.CharField(read_only=True)
    created_at = TimestampField()
    client_id = serializers.CharField(read_only=True, allow_null=True)
    rev = serializers.IntegerField(
        read_only=True, min_value=1, help_text="The position of the latest change."
    )
    reply_to = serializers.UUIDField(read_only=True, allow_null=True)
    edited_at = TimestampField(allow_null=True)
    deleted = serializers.BooleanField(read_only=True)
    reactions = ReactionSerializer(many=True, read_only=True)
    mentions = serializers.ListField(child=serializers.CharField(), read_only=True)

    def to_representation(self, message) -> dict:
        return message_payload(message)


@extend_schema_serializer(many=False)  # one page object, even for the ``list`` action
class MessagePageSerializer(serializers.Serializer):
    """A page in ascending order; ``previous`` is the older page, ``next`` the newer one."""

    results = MessageSerializer(many=True, read_only=True)
    next = serializers.URLField(read_only=True, allow_null=True)
    previous = serializers.URLField(read_only=True, allow_null=True)


class ReadInputSerializer(serializers.Serializer):
    """Shape only; ``read_mark`` clamps the position and checks the channel."""

    channel = channel_name_field()
    seq = StrictIntegerField(
        min_value=0, help_text="The highest position read; above the channel's last it is taken as the last."
    )


class ReadStateSerializer(serializers.Serializer):
    """A read position and what lies unread above it."""

    channel = serializers.CharField(read_only=True, allow_null=True, help_text="Null for the lobby.")
    last_read_seq = serializers.IntegerField(read_only=True)
    unread = serializers.IntegerField(
        read_only=True, help_text="Messages above last_read_seq, not deleted, written by others."
    )
    mentions = serializers.IntegerField(read_only=True, help_text="Those unread messages that mention you.")
