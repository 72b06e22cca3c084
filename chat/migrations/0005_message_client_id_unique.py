"""One message per (room, user, client_id): a post retried after a reload or a reconnect finds the
stored message instead of saving a second one (chat.services.post_message).

Rows saved twice before this constraint existed stay in the history as they are; only the later
copies lose their client_id (an empty client_id is outside the constraint), so nothing is deleted.
"""

from django.conf import settings
from django.db import migrations, models


def release_duplicate_client_ids(apps, schema_editor):
    Message = apps.get_model("chat", "Message")
    seen = set()
    rows = (
        Message.objects.exclude(client_id="")
        .order_by("id")
        .values_list("id", "room_id", "user_id", "client_id")
    )
    later = []
    for pk, room, user, client_id in rows.iterator():
        key = (room, user, client_id)
        if user is not None and key in seen:
            later.append(pk)
        seen.add(key)
    for start in range(0, len(later), 500):
        Message.objects.filter(pk__in=later[start : start + 500]).update(client_id="")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_message_search"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(release_duplicate_client_ids, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                condition=models.Q(("client_id", ""), _negated=True),
                fields=("room", "user", "client_id"),
                name="chat_message_client_id",
            ),
        ),
    ]
