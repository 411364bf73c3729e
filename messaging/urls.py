"""REST routes of messaging (filled in by the REST work)."""

urlpatterns: list = []
