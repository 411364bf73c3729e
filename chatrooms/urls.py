"""REST routes of chatrooms: ``/api/channels/...``, with or without a trailing slash."""

from rest_framework.routers import SimpleRouter

from chatrooms import views

# As in accounts.urls: an optional slash, since a redirect would drop POST bodies.
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("channels", views.ChannelViewSet, basename="channel")

urlpatterns = [*router.urls]
