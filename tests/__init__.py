"""Cross-app tests: whole processes, real servers, production shape."""
