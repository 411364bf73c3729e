"""Moderating channels: deleting one goes through ``channel_remove``, which tells its subscribers."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from chatrooms.models import Channel, Membership
from chatrooms.services import channel_remove


class MembershipInline(admin.TabularInline):
    """Members, read-only: joining and leaving go through the services, which update open sockets."""

    model = Membership
    extra = 0
    can_delete = False
    fields = ["user", "joined_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "member_count", "created_at"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    # Only the description is editable: a rename or a new owner would bypass
    # the services and leave open sockets with stale names.
    readonly_fields = ["id", "name", "owner", "created_at"]
    inlines = [MembershipInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(ordering="member_total", description="members")
    def member_count(self, channel: Channel) -> int:
        return channel.member_total

    def has_add_permission(self, request) -> bool:
        # Channels are created by their owners through channel_create.
        return False

    def delete_model(self, request, obj: Channel) -> None:
        channel_remove(channel=obj)

    def delete_queryset(self, request, queryset) -> None:
        for channel in queryset:
            channel_remove(channel=channel)
