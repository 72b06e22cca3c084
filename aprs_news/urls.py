"""The news page and bulletin-group follows, mounted at /news/ by config/urls.py."""

from django.urls import path

from aprs_news import views

app_name = "aprs_news"

urlpatterns = [
    path("", views.news_page, name="page"),
    path("follow/", views.follow_group, name="follow"),
    path("unfollow/", views.unfollow_group, name="unfollow"),
]
