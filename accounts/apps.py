from django.apps import AppConfig
from django.db.models import CharField, EmailField
from django.db.models.functions import Lower


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # `field__lower=value` compiles to LOWER(field) = value, which the
        # case-insensitive unique indexes serve (``__iexact`` would not).
        CharField.register_lookup(Lower)
        EmailField.register_lookup(Lower)
        from accounts import checks  # noqa: F401  (registers the system checks)
