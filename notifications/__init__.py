"""Notifications: other apps create them with `notify()` / `notify_all()`."""
