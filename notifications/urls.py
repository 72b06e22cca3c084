"""Pages and HTTP API of the notifications app (mounted at the site root by config/urls.py)."""

urlpatterns: list = []
