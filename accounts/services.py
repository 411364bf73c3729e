"""Writes for users and login sessions: register, login, refresh, logout, profile, password.

Each function is the one path for its verb, called from REST views, the admin
and management commands alike. Closing sockets is published only after
commit. Status and presence changes live in ``accounts.presence``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import Action, audit_record
from accounts.models import LoginSession, User
from accounts.tokens import InvalidToken, TokenPair, decode_refresh, issue_token_pair, session_expired
from core.errors import InvalidInput, NotAuthenticated
from realtime import frames
from realtime.groups import session_group, user_group
from realtime.publish import close_group_on_commit

BAD_CREDENTIALS = "No active account found with the given credentials."
# ``/api/users/me`` and ``/api/users/online`` are routes, so a user of either
# name could never be looked up by name; compared ignoring case.
RESERVED_USERNAMES = frozenset({"me", "online"})


@dataclass(frozen=True)
class LoginResult:
    user: User
    session: LoginSession
    tokens: TokenPair


@functools.cache
def _dummy_password_hash() -> str:
    return make_password("not-a-real-password")


# --- registration and profile ----------------------------------------------


def _check_email_free(email: str, *, exclude: User | None = None) -> None:
    taken = User.objects.filter(email__lower=email.lower())
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise InvalidInput("A user with this email already exists.", field="email")


def _check_password_strength(password: str, user: User) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise InvalidInput(list(exc.messages), field="password") from exc


def user_register(*, username: str, email: str, password: str) -> User:
    """Create an account; username and email are unique ignoring case."""
    if username.lower() in RESERVED_USERNAMES:
        raise InvalidInput("This username is reserved.", field="username")
    if User.objects.filter(username__lower=username.lower()).exists():
        raise InvalidInput("A user with this username already exists.", field="username")
    _check_email_free(email)
    user = User(username=username, email=User.objects.normalize_email(email))
    _check_password_strength(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent registration won the race
        if User.objects.filter(username__lower=username.lower()).exists():
            raise InvalidInput("A user with this username already exists.", field="username") from exc
        raise InvalidInput("A user with this email already exists.", field="email") from exc
    return user


def user_update_profile(
    *,
    user: User,
    session: LoginSession | None,
    email: str | None = None,
    password: str | None = None,
    current_password: str | None = None,
) -> User:
    """Change email and/or password, each guarded by the current password.

    A password change ends the user's other sessions (and closes their
    sockets): whoever knew the old password is signed out everywhere else.
    """
    if email is None and password is None:
        return user
    if not current_password or not user.check_password(current_password):
        raise InvalidInput("The current password is missing or wrong.", field="current_password")
    if email is not None:
        _check_email_free(email, exclude=user)
        user.email = User.objects.normalize_email(email)
    if password is not None:
        _check_password_strength(password, user)
    try:
        with transaction.atomic():
            user.save(update_fields=["email"])
            if password is not None:
                user_set_password(user=user, password=password, keep=session)
    except IntegrityError as exc:
        raise InvalidInput("A user with this email already exists.", field="email") from exc
    return user


def user_set_password(
    *, user: User, password: str | None, keep: LoginSession | None = None, actor: User | None = None
) -> None:
    """Set the password (None: make it unusable) and end every session but ``keep``.

    Whoever knew the old password is signed out and their sockets close
    (4401): the profile route keeps the caller's own session, the admin none.
    ``actor`` is the staff member setting it (the admin's password page): that
    is moderation and leaves an audit record; a user's own change passes none.
    """
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        others = user.login_sessions.filter(ended_at__isnull=True)
        if keep is not None:
            others = others.exclude(pk=keep.pk)
        ended = 0
        for other in others:
            _end_session(other, reason=LoginSession.EndReason.PASSWORD_CHANGED)
            ended += 1
        if actor is not None:
            what = "password set" if password is not None else "password login disabled"
            audit_record(
                actor=actor,
                action=Action.PASSWORD_SET,
                target=user_target(user),
                detail=f"{what}; {ended} session(s) ended",
            )


def user_target(user: User) -> str:
    """How audit records name a user."""
    return f"user {user.username}"


# --- sessions ---------------------------------------------------------------


def session_login(*, username: str, password: str, client_address: str, user_agent: str) -> LoginResult:
    """Check credentials and open a session.

    An unknown username still pays for one password hash, so the answer's
    timing does not tell which usernames exist.
    """
    user = User.objects.filter(username__lower=username.lower()).first()
    if user is None:
        check_password(password, _dummy_password_hash())
        raise NotAuthenticated(BAD_CREDENTIALS)
    if not user.check_password(password) or not user.is_active:
        raise NotAuthenticated(BAD_CREDENTIALS)
    with transaction.atomic():
        session = LoginSession.objects.create(
            user=user, client_address=client_address[:64], user_agent=user_agent[:256]
        )
        tokens = issue_token_pair(session)
        session.refresh_jti = tokens.refresh_jti
        session.save(update_fields=["refresh_jti"])
    return LoginResult(user=user, session=session, tokens=tokens)


def session_refresh(*, refresh: str) -> TokenPair:
    """Rotate a refresh token; a rotated-out token ends its whole session.

    Reuse of an old refresh token means two parties hold the session (token
    theft), so neither keeps it.
    """
    try:
        session_id, jti = decode_refresh(refresh)
    except InvalidToken as exc:
        raise NotAuthenticated("Token is invalid or expired.") from exc
    with transaction.atomic():
        session = (
            LoginSession.objects.select_for_update().select_related("user").filter(id=session_id).first()
        )
        if (
            session is None  # a missing row counts as ended
            or session.ended_at is not None
            or not session.user.is_active
            or session_expired(session)  # past CHAT_SESSION_MAX_SECONDS: refreshing cannot extend it
        ):
            reused = False
            tokens = None
        elif jti != session.refresh_jti:
            _end_session(session, reason=LoginSession.EndReason.REFRESH_REUSE)
            reused, tokens = True, None
        else:
            tokens = issue_token_pair(session)
            session.refresh_jti = tokens.refresh_jti
            session.last_used_at = timezone.now()
            session.save(update_fields=["refresh_jti", "last_used_at"])
            reused = False
    if tokens is None:
        detail = "Refresh token was already used; the session has ended." if reused else "Session has ended."
        raise NotAuthenticated(detail)
    return tokens


def session_logout(*, session: LoginSession) -> None:
    """End one session: its tokens stop working and its sockets close with 4401."""
    with transaction.atomic():
        _end_session(session, reason=LoginSession.EndReason.LOGOUT)


def _end_session(session: LoginSession, *, reason: str) -> None:
    if session.ended_at is None:
        session.ended_at = timezone.now()
        session.end_reason = reason
        session.save(update_fields=["ended_at", "end_reason"])
    close_group_on_commit(session_group(session.id), frames.CLOSE_UNAUTHORIZED)


def user_deactivate(*, user: User, actor: User | None = None) -> None:
    """Deactivate an account: end every session and close every socket (4403).

    ``actor`` is who did it (None: the system); a user who was active leaves
    an audit record. Deactivating an inactive user records nothing but still
    closes whatever is left open.
    """
    with transaction.atomic():
        # One conditional update: of two deactivations at once, only one changes (and records) it.
        changed = User.objects.filter(pk=user.pk, is_active=True).update(is_active=False) == 1
        user.is_active = False
        # Registered first, so sockets close with 4403 before the sessions' 4401.
        close_group_on_commit(user_group(user.id), frames.CLOSE_FORBIDDEN)
        ended = 0
        for session in user.login_sessions.filter(ended_at__isnull=True):
            _end_session(session, reason=LoginSession.EndReason.DEACTIVATED)
            ended += 1
        if changed:
            audit_record(
                actor=actor,
                action=Action.USER_DEACTIVATED,
                target=user_target(user),
                detail=f"{ended} session(s) ended",
            )


def user_reactivate(*, user: User, actor: User | None = None) -> None:
    """Let a deactivated account log in again (its old sessions stay ended); audited when it changes."""
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, is_active=False).update(is_active=True) == 1
        user.is_active = True
        if changed:
            audit_record(actor=actor, action=Action.USER_REACTIVATED, target=user_target(user))
