"""`manage.py create_room SLUG [--title T] [--topic T]`: create a chat room, or update the title
and topic of an existing one. For setting up a deployment; unlike `seed_demo` it creates no
accounts and no messages.

    python manage.py create_room general --title "General" --topic "Anything goes."

The slug is checked like the admin checks it (letters, digits, '-' and '_', at most 50, not a
reserved name); a bad one stops the command with the reason and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.models import Room


class Command(BaseCommand):
    help = "Create a chat room (or update its title and topic). Safe to re-run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the room's address: /rooms/<slug>/")
        parser.add_argument("--title", default=None, help="display name (default: the slug)")
        parser.add_argument("--topic", default=None, help="one line shown under the title")

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        room = Room.objects.filter(slug=slug).first()
        created = room is None
        if room is None:
            room = Room(slug=slug)
        if options["title"] is not None:
            room.title = options["title"]
        if options["topic"] is not None:
            room.topic = options["topic"]
        try:
            room.full_clean()
        except ValidationError as error:
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
            )
            raise CommandError(f"Cannot save room {slug!r}: {problems}") from error
        room.save()
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} room #{room.slug} ({room.display_name}) at /rooms/{room.slug}/")
