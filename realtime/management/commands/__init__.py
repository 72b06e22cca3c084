"""`manage.py runworker` and `manage.py serve`."""
