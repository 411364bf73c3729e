from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Give chatrooms the stream steps it needs without importing this app, and start every
        new user's lobby read position."""
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from chatrooms import streams
        from messaging import positions, reads

        streams.provide(
            streams.StreamSteps(
                stream_created=positions.stream_created,
                last_position=positions.last_position,
                stream_removed=positions.stream_removed,
                read_counts=reads.channel_read_counts,
            )
        )
        post_save.connect(_user_created, sender=get_user_model(), dispatch_uid="messaging.lobby_read_start")


def _user_created(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """Start a new user's lobby read position at the lobby's position, so nothing is unread.

    A receiver rather than a call in ``accounts.services``: users are created by
    paths this project does not own (the admin's add form, ``createsuperuser``,
    fixtures) and ``accounts`` sits below ``messaging`` in the layers, so it
    cannot call in. Bulk creation (seeding) sends no signal and creates the
    rows itself. Fixture loading (``raw``) is left alone: a missing row reads as 0.
    """
    if created and not raw:
        from messaging.reads import lobby_read_start

        lobby_read_start(user_id=instance.pk)
