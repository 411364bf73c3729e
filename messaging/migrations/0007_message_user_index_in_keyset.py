"""Drop the index Django gave ``Message.user``: ``messaging_by_user_time_id`` starts with the user.

A new message wrote one more index entry at a random place (users' ids are
random) for no query that the keyset index does not serve as well. The
index is dropped by name rather than by ``AlterField``, which on SQLite
would rebuild the table and lose the search triggers that 0005 put on it.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

INDEX = "messaging_message_user_id_d58e6394"


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0006_lobby_read"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {INDEX}",
                    reverse_sql=f'CREATE INDEX {INDEX} ON "messaging_message" ("user_id")',
                ),
            ],
        ),
    ]
