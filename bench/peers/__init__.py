"""Conveyor beside its Python peers (Celery, Dramatiq, taskiq on Redis): ``compare`` runs one
workload through all of them (see its docstring). ``common`` and ``redis_server`` are stdlib
only, so both the project's venv and ``.venv-peers`` import them; ``*_peer`` modules run under
``.venv-peers``; ``compare`` and ``conveyor_side`` run in the project's venv."""
