"""Input serializers validate shape; output serializers render the contract's shapes."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import USERNAME_PATTERN, User
from accounts.presence import user_payload
from core.timestamps import TimestampField


class RegisterInputSerializer(serializers.Serializer):
    username = serializers.RegexField(
        USERNAME_PATTERN,
        max_length=32,
        error_messages={"invalid": "Use 3 to 32 characters: letters, digits, underscore, dot or hyphen."},
    )
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)


class LoginInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class RefreshInputSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class LogoutInputSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096, required=False)


class ProfileUpdateInputSerializer(serializers.Serializer):
    """Only email and password can change; every other field is ignored."""

    email = serializers.EmailField(max_length=254, required=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, required=False)
    current_password = serializers.CharField(max_length=4096, trim_whitespace=False, required=False)


class StatusInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=User.Status.choices)


class PublicUserSerializer(serializers.Serializer):
    """A user as others see them; ``context["connected"]`` holds the connected ids."""

    id = serializers.UUIDField(read_only=True)
    username = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=User.Status.choices, read_only=True)
    is_online = serializers.BooleanField(read_only=True)
    last_seen = TimestampField(allow_null=True)
    date_joined = TimestampField()

    def to_representation(self, user: User) -> dict:
        return user_payload(user, connected=user.id in self.context.get("connected", ()))


class OwnUserSerializer(PublicUserSerializer):
    """The user's own profile: their chosen status, and their email."""

    email = serializers.EmailField(read_only=True)

    def to_representation(self, user: User) -> dict:
        return user_payload(user, connected=user.id in self.context.get("connected", ()), own=True)


class LoginOutputSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()
    user = OwnUserSerializer()


class TokenPairOutputSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
