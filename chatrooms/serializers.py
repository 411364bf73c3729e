"""Input serializers check shape; output serializers render the contract's channel object."""

from __future__ import annotations

from rest_framework import serializers

from chatrooms.models import BAN_REASON_MAX_LENGTH, CHANNEL_NAME_PATTERN, Channel
from chatrooms.services import DESCRIPTION_MAX_LENGTH
from core.timestamps import TimestampField


class ChannelCreateInputSerializer(serializers.Serializer):
    name = serializers.RegexField(
        CHANNEL_NAME_PATTERN,
        max_length=64,
        error_messages={
            "invalid": "Use 1 to 64 letters, digits, underscores or hyphens, starting with a letter or digit."
        },
        help_text="1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit; unique ignoring case.",
    )
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
    private = serializers.BooleanField(
        required=False, default=False, help_text="A private channel: invisible to non-members."
    )


class ChannelSerializer(serializers.Serializer):
    """A channel; the queryset must annotate ``member_count`` and load ``owner``."""

    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=Channel.Kind.choices, read_only=True)
    owner = serializers.CharField(
        source="owner.username",
        read_only=True,
        allow_null=True,
        help_text="The owner's username; null for a direct channel.",
    )
    member_count = serializers.IntegerField(read_only=True)
    created_at = TimestampField()


class ChannelDetailSerializer(ChannelSerializer):
    """A channel with its members' usernames, sorted ignoring case."""

    members = serializers.ListField(child=serializers.CharField(), source="member_names", read_only=True)


class MyChannelSerializer(ChannelSerializer):
    """A channel of the caller's, with their read state in it (``read_state`` set by the view)."""

    last_read_seq = serializers.IntegerField(source="read_state.last_read_seq", read_only=True)
    unread = serializers.IntegerField(
        source="read_state.unread",
        read_only=True,
        help_text="Messages above last_read_seq by others, not deleted.",
    )
    mentions = serializers.IntegerField(
        source="read_state.mentions",
        read_only=True,
        help_text="Those unread messages that mention the caller.",
    )


class MemberAddInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=64)


class BanInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=64)
    reason = serializers.CharField(
        max_length=BAN_REASON_MAX_LENGTH, required=False, allow_blank=True, default=""
    )


class BanSerializer(serializers.Serializer):
    """A ban: who, why, by whom (null once that user is gone), when."""

    username = serializers.CharField(source="user.username", read_only=True)
    reason = serializers.CharField(read_only=True)
    banned_by = serializers.CharField(source="banned_by.username", read_only=True, allow_null=True)
    created_at = TimestampField()
