"""Fixtures for the notifications tests: two users and clients logged in as them."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def ann(db):
    """A user without a password (no slow hashing); tests log in with force_login."""
    return get_user_model().objects.create_user("ann", "ann@example.com")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com")


@pytest.fixture
def ann_client(ann) -> Client:
    client = Client()
    client.force_login(ann)
    return client


@pytest.fixture
def csrf_client(ann) -> Client:
    """A client logged in as ann that enforces CSRF like a browser does."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(ann)
    return client


def as_user(application, user):
    """Wrap an ASGI app so its scope carries `user`, as the auth middleware would."""

    async def app(scope, receive, send):
        return await application(dict(scope, user=user), receive, send)

    return app
