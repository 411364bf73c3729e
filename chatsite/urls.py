from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import health
from core.metrics_view import metrics_view

api_patterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("accounts.urls")),
    path("", include("chatrooms.urls")),
    path("", include("messaging.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("metrics", metrics_view, name="metrics"),
    path("", include("web.urls")),
]
