"""REST routes of messaging: ``/api/messages`` and ``/api/messages/me``, ``/api/read``; slash optional."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from messaging import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("messages", views.MessageViewSet, basename="message")

urlpatterns = [*router.urls, re_path(r"^read/?$", views.ReadView.as_view(), name="read")]
