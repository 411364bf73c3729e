from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Give chatrooms the stream steps it needs without importing this app."""
        from chatrooms import streams
        from messaging import positions

        streams.provide(positions)
