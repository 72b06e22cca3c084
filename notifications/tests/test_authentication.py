import pytest
from django.contrib.auth.models import AnonymousUser

from notifications.authentication import BearerTokenAuthMiddleware, bearer_token
from notifications.models import AccessToken
from realtime.db import database_sync_to_async


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer sbt_abc", "sbt_abc"),
        ("bearer   sbt_abc  ", "sbt_abc"),
        ("Bearer", ""),
        ("Basic dXNlcjpwYXNz", None),
        ("sbt_abc", None),
    ],
)
def test_bearer_token_parses_only_the_bearer_scheme(header, token):
    assert bearer_token(header) == token


async def scope_user_after_middleware(headers, user):
    seen = {}

    async def inner(scope, receive, send):
        seen["user"] = scope["user"]

    await BearerTokenAuthMiddleware(inner)(
        {"type": "http", "headers": headers, "user": user}, None, None
    )
    return seen["user"]


@pytest.mark.django_db(transaction=True)
async def test_middleware_replaces_the_user_only_when_a_token_is_sent(ann, bob):
    _, raw = await database_sync_to_async(AccessToken.issue)(ann, "cli")
    assert await scope_user_after_middleware([], bob) == bob
    assert (
        await scope_user_after_middleware([(b"authorization", f"Bearer {raw}".encode())], bob)
        == ann
    )
    wrong = await scope_user_after_middleware([(b"authorization", b"Bearer sbt_wrong")], bob)
    assert isinstance(wrong, AnonymousUser)
