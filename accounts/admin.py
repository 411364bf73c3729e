"""Admin moderation for users: search, filter, deactivate through the service."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts import services
from accounts.models import LoginSession, User


class ChatUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class ChatUserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email")


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
        """Unticking "active" in the form goes through the same service as the action."""
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        super().save_model(request, obj, form, change)
        if deactivating:
            services.user_deactivate(user=obj)
