"""Admin moderation for users: every change that reaches sockets goes through a service.

Deactivating (4403 on every socket), setting a password (every session ends,
4401) and changing a status (a presence frame) take the same paths as the API.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm

from accounts import presence, services
from accounts.models import LoginSession, User


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
            user=self.user, password=self.cleaned_data["password1"] if usable else None
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
    actions = ["deactivate_users"]

    @admin.action(description="Deactivate selected users (ends sessions, closes sockets)")
    def deactivate_users(self, request, queryset) -> None:
        for user in queryset:
            services.user_deactivate(user=user)
        self.message_user(request, f"Deactivated {queryset.count()} user(s).", messages.SUCCESS)

    def save_model(self, request, obj: User, form, change: bool) -> None:
        """Unticking "active" and changing the status go through the same services as the API."""
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        new_status = obj.status
        status_changed = change and "status" in form.changed_data
        if status_changed:
            obj.status = form.initial["status"]  # user_set_status makes the change, and announces it
        super().save_model(request, obj, form, change)
        if status_changed:
            presence.user_set_status(user=obj, status=new_status)
        if deactivating:
            services.user_deactivate(user=obj)
