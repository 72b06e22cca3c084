"""Pages of the chat app (mounted at the site root by config/urls.py)."""

from django.urls import path

from chat import attachment_views, attention_views, views

app_name = "chat"

urlpatterns = [
    path("", views.room_list, name="room_list"),
    path("rooms/<str:slug>/", views.room_detail, name="room"),
    path("rooms/<str:slug>/invite/", views.invite, name="invite"),
    path("rooms/<str:slug>/accept/", views.accept, name="accept"),
    path("rooms/<str:slug>/decline/", views.decline, name="decline"),
    path("rooms/<str:slug>/leave/", views.leave, name="leave"),
    path("rooms/<str:slug>/remove/", views.remove, name="remove"),
    path("rooms/<str:slug>/attachments/", attachment_views.upload, name="upload_attachment"),
    path("attachments/<int:pk>/", attachment_views.download, name="attachment"),
    path(
        "attachments/<int:pk>/thumbnail/",
        attachment_views.thumbnail,
        name="attachment_thumbnail",
    ),
    path("chat/private-rooms/new/", views.create_private_room, name="create_private_room"),
    path("chat/direct/new/", views.open_dm, name="open_dm"),
    path("console/", views.console, name="console"),
    path("api/chat/rooms/", views.room_counts, name="room_counts"),
    path("api/chat/rooms/<str:slug>/members/", views.room_members, name="room_members"),
    path("search/", views.search_page, name="search"),
    path("api/chat/search/", views.search_api, name="search_api"),
    path(
        "chat/notifications/",
        attention_views.notification_settings,
        name="notification_settings",
    ),
]
