"""Admin moderation for users: every change that reaches sockets goes through a service.

Deactivating (4403 on every socket), setting a password (every session ends,
4401) and changing a status (a presence frame) take the same paths as the API.
Deactivating, reactivating and setting a password are moderation: the
services write an audit record naming the staff member, which the audit log
admin (below) lists read-only.
"""

from __future__ import annotations

from contextvars import ContextVar

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
from django.http import HttpRequest, HttpResponse

from accounts import limits, presence, services
from accounts.models import AuditRecord, LoginSession, User
from core.client_address import client_address_bucket
from core.errors import RateLimited
from core.exceptions import retry_after_header
from core.ratelimits import enforce_key_rate

# Django builds the password form without the request; the view sets who is
# acting here for the form's ``save`` (a context variable: per request, thread-safe).
_password_actor: ContextVar[User | None] = ContextVar("password_actor", default=None)


class ChatUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class ChatUserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class ChatAdminPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's "change password" page, through ``user_set_password``: every session ends."""

    def save(self, commit: bool = True) -> User:
        usable = self.cleaned_data.get("set_usable_password", True)
        services.user_set_password(
            user=self.user,
            password=self.cleaned_data["password1"] if usable else None,
            actor=_password_actor.get(),
        )
        return self.user


class LoginSessionInline(admin.TabularInline):
    model = LoginSession
    extra = 0
    can_delete = False
    fields = ("id", "created_at", "last_used_at", "ended_at", "end_reason", "client_address", "user_agent")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = ChatUserChangeForm
    add_form = ChatUserCreationForm
    change_password_form = ChatAdminPasswordChangeForm
    list_display = ("username", "email", "status", "is_active", "is_staff", "last_seen", "date_joined")
    list_filter = ("is_active", "is_staff", "status")
    search_fields = ("username", "email")
    ordering = ("username",)
    readonly_fields = ("id", "last_seen", "date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("id", "username", "email", "password")}),
        ("Chat", {"fields": ("status", "last_seen", "date_joined", "last_login")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
    )
    inlines = [LoginSessionInline]
    actions = ["deactivate_users", "reactivate_users"]

    @admin.action(description="Deactivate selected users (ends sessions, closes sockets)")
    def deactivate_users(self, request, queryset) -> None:
        users = list(queryset)
        for user in users:
            services.user_deactivate(user=user, actor=request.user)
        self.message_user(request, f"Deactivated {len(users)} user(s).", messages.SUCCESS)

    @admin.action(description="Reactivate selected users (they can log in again)")
    def reactivate_users(self, request, queryset) -> None:
        users = list(queryset)
        for user in users:
            services.user_reactivate(user=user, actor=request.user)
        self.message_user(request, f"Reactivated {len(users)} user(s).", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting a user would take their messages with it, unannounced and
        # outside every service; moderators deactivate instead.
        return False

    def user_change_password(self, request, id, form_url=""):
        """The password page: its form sets the password through ``user_set_password`` as ``request.user``."""
        token = _password_actor.set(request.user)
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    def save_model(self, request, obj: User, form, change: bool) -> None:
        """The "active" box and the status go through the same services as the API and actions.

        The form's values for both are put back before the row is saved, so
        the services see the change, make it, announce it and audit it.
        """
        active_changed = change and "is_active" in form.changed_data
        new_active, new_status = obj.is_active, obj.status
        status_changed = change and "status" in form.changed_data
        if active_changed:
            obj.is_active = form.initial["is_active"]
        if status_changed:
            obj.status = form.initial["status"]
        super().save_model(request, obj, form, change)
        if status_changed:
            presence.user_set_status(user=obj, status=new_status)
        if active_changed and new_active:
            services.user_reactivate(user=obj, actor=request.user)
        elif active_changed:
            services.user_deactivate(user=obj, actor=request.user)


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    """The moderation audit log, read-only for everyone (superusers too); staff may read it."""

    list_display = ["created_at", "actor", "action", "target", "detail"]
    list_filter = ["action", "created_at"]
    search_fields = ["actor", "target", "detail"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = ["id", "actor_id", "actor", "action", "target", "detail", "created_at"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- the admin's login page ---------------------------------------------------

_admin_login = admin.site.login


def rate_limited_admin_login(request: HttpRequest, extra_context=None) -> HttpResponse:
    """``/admin/login/`` under the login limits: per address, per (username, address), per username.

    Every POST counts against the address (``CHAT_ADMIN_LOGIN_RATE``); a
    failed one also counts against the username, as an API login does
    (``accounts.limits``). Past a limit the page answers 429 with Retry-After
    before any password is checked.
    """
    if request.method != "POST":
        return _admin_login(request, extra_context)
    address = client_address_bucket(request)
    username = str(request.POST.get("username", ""))
    try:
        enforce_key_rate(group="admin.login", key=address, rate=settings.CHAT_ADMIN_LOGIN_RATE)
        if username:
            limits.login_allowed(username=username, address=address)
    except RateLimited as refused:
        retry_after = retry_after_header(refused.retry_after)
        response = HttpResponse(
            f"Too many login attempts; try again in {retry_after['Retry-After']} seconds.\n",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = retry_after["Retry-After"]
        return response
    response = _admin_login(request, extra_context)
    if username and response.status_code != 302:  # the form shown again: refused credentials
        limits.login_failed(username=username, address=address)
    return response


admin.site.login = rate_limited_admin_login
