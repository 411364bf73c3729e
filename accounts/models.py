"""Users and their login sessions."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}\Z"

username_validator = RegexValidator(
    USERNAME_PATTERN,
    "Use 3 to 32 characters: letters, digits, underscore, dot or hyphen.",
)


class UserManager(BaseUserManager["User"]):
    def get_by_natural_key(self, username: str) -> User:
        """Admin and ``authenticate()`` look users up ignoring case, like the API."""
        return self.get(username__lower=username.lower())

    def create_user(self, username: str, email: str, password: str | None = None, **extra) -> User:
        user = self.model(username=username, email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, username: str, email: str, password: str | None = None, **extra) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(username, email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    class Status(models.TextChoices):
        ONLINE = "online"
        AWAY = "away"
        OFFLINE = "offline"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    username = models.CharField(max_length=32, unique=True, validators=[username_validator])
    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ONLINE)
    last_seen = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.username


class LoginSession(models.Model):
    """One login: the tokens it issues carry its id, and ending it revokes them all."""

    class EndReason(models.TextChoices):
        LOGOUT = "logout"
        REFRESH_REUSE = "refresh_reuse"
        DEACTIVATED = "deactivated"
        PASSWORD_CHANGED = "password_changed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="login_sessions")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    client_address = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    # The jti of the one refresh token that may still be used; any other
    # refresh token of this session is a stolen, rotated-out copy.
    refresh_jti = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "ended_at"], name="accounts_session_user_open")]

    def __str__(self) -> str:
        return f"{self.user_id} session {self.id}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class AuditRecordQuerySet(models.QuerySet):
    """Audit records are appended, never changed or removed: bulk updates and deletes refuse."""

    def update(self, **kwargs):
        raise PermissionError("Audit records cannot be changed.")

    def delete(self):
        raise PermissionError("Audit records cannot be deleted.")


class AuditRecord(models.Model):
    """One moderation action, kept for good (``accounts.audit.audit_record`` writes them).

    The actor is kept by id and username rather than by foreign key, so that
    deleting a user never changes or removes what they did.
    """

    class Action(models.TextChoices):
        MESSAGE_DELETED = "message_deleted"
        CHANNEL_DELETED = "channel_deleted"
        USER_BANNED = "user_banned"
        USER_UNBANNED = "user_unbanned"
        MEMBER_REMOVED = "member_removed"
        USER_DEACTIVATED = "user_deactivated"
        USER_REACTIVATED = "user_reactivated"
        PASSWORD_SET = "password_set"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    actor_id = models.UUIDField(null=True, blank=True)
    actor = models.CharField(max_length=32, blank=True)  # the username; blank for the system
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=200)
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AuditRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.actor or 'system'} {self.action} {self.target}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise PermissionError("Audit records cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit records cannot be deleted.")
