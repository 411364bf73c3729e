"""REST routes of chatrooms: ``/api/channels/...`` and ``/api/dms/{username}``, trailing slash optional."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from chatrooms import views

# As in accounts.urls: an optional slash, since a redirect would drop POST bodies.
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("channels", views.ChannelViewSet, basename="channel")

urlpatterns = [
    *router.urls,
    re_path(r"^dms/(?P<username>[^/]+)/?$", views.DirectChannelView.as_view(), name="direct-open"),
]
