from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import views

# SimpleRouter turns any truthy ``trailing_slash`` into "/", so set the
# optional slash after construction: the contract's routes have none
# (``/api/users/me``) and a redirect would drop PATCH and POST bodies.
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("users", views.UserViewSet, basename="user")

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    *router.urls,
]
