"""Moderating channels: every kind is reachable; deleting one goes through ``channel_remove``,
which tells its subscribers and audits the deletion."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from chatrooms.models import Ban, Channel, Membership
from chatrooms.services import channel_remove


class MembershipInline(admin.TabularInline):
    """Members, read-only: joining and leaving go through the services, which update open sockets."""

    model = Membership
    extra = 0
    can_delete = False
    fields = ["user", "joined_at", "last_read_seq"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class BanInline(admin.TabularInline):
    """Bans, read-only: banning and lifting go through the API, which removes members and audits."""

    model = Ban
    fk_name = "channel"
    extra = 0
    can_delete = False
    fields = ["user", "reason", "banned_by", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "owner", "member_count", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    # Only the description is editable: a rename, a new owner or another kind
    # would bypass the services and leave open sockets with stale names.
    readonly_fields = ["id", "name", "kind", "owner", "created_at"]
    inlines = [MembershipInline, BanInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        # Every kind, private and direct included: the admin is for moderators.
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(ordering="member_total", description="members")
    def member_count(self, channel: Channel) -> int:
        return channel.member_total

    def has_add_permission(self, request) -> bool:
        # Channels are created by their owners through channel_create.
        return False

    def delete_model(self, request, obj: Channel) -> None:
        channel_remove(channel=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for channel in queryset:
            channel_remove(channel=channel, actor=request.user)
