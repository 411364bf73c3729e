"""Version 4: positions of changes (rev), replies, edits, deletions, reactions, mentions, search.

Search lives in each database's own full-text index, kept in the write's
transaction: PostgreSQL indexes ``to_tsvector('simple', content)`` with GIN;
SQLite keeps an FTS5 table that triggers update with every insert, edit and
deletion (bulk seeding included).
"""

from django.conf import settings
from django.db import migrations, models
from django.db.models import F

SQLITE_SEARCH = [
    """CREATE VIRTUAL TABLE messaging_message_fts USING fts5(
        content, message_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 0'
    )""",
    """CREATE TRIGGER messaging_message_fts_insert AFTER INSERT ON messaging_message
       WHEN NOT NEW.deleted BEGIN
         INSERT INTO messaging_message_fts (content, message_id) VALUES (NEW.content, NEW.id);
       END""",
    """CREATE TRIGGER messaging_message_fts_update AFTER UPDATE OF content, deleted ON messaging_message
       BEGIN
         DELETE FROM messaging_message_fts WHERE message_id = OLD.id;
         INSERT INTO messaging_message_fts (content, message_id)
           SELECT NEW.content, NEW.id WHERE NOT NEW.deleted;
       END""",
    """CREATE TRIGGER messaging_message_fts_delete AFTER DELETE ON messaging_message
       BEGIN
         DELETE FROM messaging_message_fts WHERE message_id = OLD.id;
       END""",
    """INSERT INTO messaging_message_fts (content, message_id)
       SELECT content, id FROM messaging_message WHERE NOT deleted""",
]
SQLITE_SEARCH_DROP = [
    "DROP TRIGGER IF EXISTS messaging_message_fts_insert",
    "DROP TRIGGER IF EXISTS messaging_message_fts_update",
    "DROP TRIGGER IF EXISTS messaging_message_fts_delete",
    "DROP TABLE IF EXISTS messaging_message_fts",
]
POSTGRES_SEARCH = [
    """CREATE INDEX messaging_message_search ON messaging_message
       USING gin (to_tsvector('simple'::regconfig, content))""",
]
POSTGRES_SEARCH_DROP = ["DROP INDEX IF EXISTS messaging_message_search"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


def revs_from_seqs(apps, schema_editor):
    apps.get_model("messaging", "Message").objects.update(rev=F("seq"))


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0004_stream_time_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="rev",
            field=models.BigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.RunPython(revs_from_seqs, migrations.RunPython.noop),
        migrations.AddField(
            model_name="message",
            name="reply_to",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=models.deletion.SET_NULL,
                related_name="replies",
                to="messaging.message",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="edited_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="deleted",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["channel", "rev"], name="messaging_by_stream_rev"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["reply_to", "seq"], name="messaging_replies"),
        ),
        migrations.CreateModel(
            name="Reaction",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("emoji", models.CharField(max_length=128)),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE, related_name="reaction_rows", to="messaging.message"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("message", "emoji", "user"), name="messaging_reaction_once")
                ],
            },
        ),
        migrations.CreateModel(
            name="Mention",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE, related_name="mention_rows", to="messaging.message"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE, related_name="mentions", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("message", "user"), name="messaging_mention_once")],
                "indexes": [models.Index(fields=["user", "message"], name="messaging_mentions_by_user")],
            },
        ),
        migrations.RunPython(
            _run({"sqlite": SQLITE_SEARCH, "postgresql": POSTGRES_SEARCH}),
            _run({"sqlite": SQLITE_SEARCH_DROP, "postgresql": POSTGRES_SEARCH_DROP}),
        ),
    ]
