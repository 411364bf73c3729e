"""REST routes of chatrooms (filled in by the REST work)."""

urlpatterns: list = []
