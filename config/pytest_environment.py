"""A pytest plugin (loaded with `-p` in pyproject.toml) that sets the test environment before
pytest-django imports the settings: development mode (the built-in key is accepted, static files
come from the finders) and plain-HTTP cookies, as `make run` uses. Explicit values win."""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
