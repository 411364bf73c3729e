"""Moderating messages: deletion goes through ``message_remove``, the tombstone every interface makes.

The admin reaches every message, private and direct channels included; a
deletion of someone else's message leaves an audit record (``message_remove``).
Its deletions are not rate limited: a bulk deletion must not stop halfway.
"""

from __future__ import annotations

from django.contrib import admin

from messaging.changes import message_remove
from messaging.models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "channel", "seq", "user", "short_content"]
    list_filter = ["channel", "created_at"]
    search_fields = ["content", "user__username"]
    list_select_related = ["channel", "user"]
    # Nothing is edited here: an edit is the author's, a deletion makes a tombstone (below).
    readonly_fields = [
        "id", "seq", "rev", "channel", "user", "content", "created_at", "client_id", "reply_to", "edited_at",
        "deleted",
    ]  # fmt: skip
    date_hierarchy = "created_at"
    ordering = ["-created_at"]

    @admin.display(description="content")
    def short_content(self, message: Message) -> str:
        return message.content if len(message.content) <= 80 else message.content[:79] + "…"

    def has_add_permission(self, request) -> bool:
        # Messages are written by users through message_send, never invented here.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # View only: a "Save" here would write back the row as it was read,
        # undoing an edit or a deletion committed in between.
        return False

    def delete_model(self, request, obj: Message) -> None:
        message_remove(user=request.user, message=obj, rate_limited=False)

    def delete_queryset(self, request, queryset) -> None:
        for message in queryset:
            message_remove(user=request.user, message=message, rate_limited=False)
