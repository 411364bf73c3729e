"""REST routes of messaging: ``/api/messages`` and ``/api/messages/me``, slash optional."""

from rest_framework.routers import SimpleRouter

from messaging import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("messages", views.MessageViewSet, basename="message")

urlpatterns = [*router.urls]
