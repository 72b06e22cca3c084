"""Pages of the chat app (mounted at the site root by config/urls.py)."""

from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.room_list, name="room_list"),
    path("rooms/<str:slug>/", views.room_detail, name="room"),
    path("console/", views.console, name="console"),
    path("api/chat/rooms/", views.room_counts, name="room_counts"),
]
