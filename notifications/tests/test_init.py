import notifications
from notifications import services


def test_package_exports_exactly_the_notification_entry_points():
    assert sorted(notifications.__all__) == ["anotify", "anotify_all", "notify", "notify_all"]
    for name in notifications.__all__:
        assert getattr(notifications, name) is getattr(services, name)
