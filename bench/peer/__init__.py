"""The peer row: django-webhook (Celery 5, SQLite), run from its own venv (`.venv-peer`).

Nothing here is imported by shahihooks or by the harness's own process: the harness runs
`bench.peer.enqueue` and a worker of `bench.peer.worker` with the peer venv's Python.
"""
