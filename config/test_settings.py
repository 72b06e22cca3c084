"""Settings for the test suite (pytest-django loads this module; see pyproject.toml).

The tests run in development mode, as `make run` does: the built-in key is accepted and static files
come from the finders; cookies go over plain HTTP to 127.0.0.1. Explicit environment values win.
Servers the tests start in subprocesses use config.settings with their own environment.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")

from config.settings import *  # noqa: F403

# Hashing is not what the tests check; Django's PBKDF2 costs ~0.4 s per user on a small machine.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
