"""Pages of the chat app (mounted at the site root by config/urls.py)."""

app_name = "chat"

urlpatterns: list = []
