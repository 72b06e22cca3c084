from django.contrib import admin

from aprs_news.models import BulletinFollow, NewsItem


@admin.register(NewsItem)
class NewsItemAdmin(admin.ModelAdmin):
    list_display = ["received", "kind", "source", "addressee", "text", "seen_count", "last_seen"]
    list_filter = ["kind", "group"]
    search_fields = ["source", "addressee", "text"]
    readonly_fields = ["dedupe_key"]
    date_hierarchy = "received"


@admin.register(BulletinFollow)
class BulletinFollowAdmin(admin.ModelAdmin):
    list_display = ["user", "group", "created"]
    search_fields = ["user__username", "group"]
