"""``messaging_by_stream_seq`` covers (channel, seq, deleted, user): unread counts read the index only.

Dropped and created again by name (plain ``DROP INDEX`` / ``CREATE INDEX`` on
both databases; no table rebuild, so 0005's search triggers stay).
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chatrooms", "0002_channel_kinds_bans_read_position"),
        ("messaging", "0007_message_user_index_in_keyset"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="message",
            name="messaging_by_stream_seq",
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["channel", "seq", "deleted", "user"], name="messaging_by_stream_seq"),
        ),
    ]
