"""Execution layer: the Lambda SDK and the worker that serves it.

Declare handlers on a :class:`Lambda`, then serve it with ``conveyor worker module:app``
(:func:`run_worker`) or, embedded, ``async with Worker(app): ...``.
"""

from conveyor.execution.app import EventContext, Lambda
from conveyor.execution.results import Fatal, Retry
from conveyor.execution.worker import RegistrationError, Worker, load_app, run_worker

__all__ = [
    "EventContext",
    "Fatal",
    "Lambda",
    "RegistrationError",
    "Retry",
    "Worker",
    "load_app",
    "run_worker",
]
