"""What the benchmarks need to run Conveyor's peers (Celery on Redis): stdlib only, so both
the project's venv and ``.venv-peers`` can import it."""
