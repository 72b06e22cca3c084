"""`manage.py seed_demo`: demo accounts, rooms and a little conversation, for `make run`.

Idempotent: users and rooms are created or updated, messages are added only to empty rooms; a
password is only set when it differs (so re-running keeps the demo users' sessions valid).
Accounts: alice and bob (password "switchboard-demo"), staff "admin" ("switchboard-admin").
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chat import services
from chat.models import Room

DEMO_PASSWORD = "switchboard-demo"
ADMIN_PASSWORD = "switchboard-admin"

ROOMS = [
    ("general", "General", "Anything goes. Be nice."),
    ("random", "Random", "Off-topic links and chatter."),
    ("help", "Help", "Questions about Switchboard."),
]

CONVERSATION = {
    "general": [
        ("alice", "Morning everyone! Switchboard is up."),
        ("bob", "Hi @alice, the new rooms look great."),
        ("alice", "Try Shift+Enter for a new line and Enter to send."),
    ],
    "random": [("bob", "Anyone tuned in to the APRS news page today?")],
    "help": [("admin", "Ask here if something does not work; staff watch the console.")],
}


class Command(BaseCommand):
    help = "Create the demo users (alice, bob, admin), rooms and a few messages. Safe to re-run."

    def handle(self, *args: Any, **options: Any) -> None:
        users = {
            "alice": self._user("alice", DEMO_PASSWORD, staff=False),
            "bob": self._user("bob", DEMO_PASSWORD, staff=False),
            "admin": self._user("admin", ADMIN_PASSWORD, staff=True),
        }
        for slug, title, topic in ROOMS:
            room, _ = Room.objects.update_or_create(
                slug=slug, defaults={"title": title, "topic": topic}
            )
            if room.messages.exists():
                continue
            for username, text in CONVERSATION.get(slug, []):
                services.post_message(users[username], room, text)
        self.stdout.write(
            "Demo ready: alice / bob (password 'switchboard-demo'), "
            "admin (password 'switchboard-admin')."
        )

    @staticmethod
    def _user(username: str, password: str, *, staff: bool) -> Any:
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        user.is_staff = user.is_superuser = staff
        # Setting even the same password again changes the hash (a new salt), and with it the
        # session hash: every page logged in as the demo user would be logged out on restart.
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        return user
