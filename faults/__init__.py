"""The fault suite: Conveyor driven from outside under kill -9, SIGSTOP, a full disk and a
second node, and a checker of what it promised.

Everything here talks to ``conveyor serve`` over HTTP only and watches real processes:

* :mod:`faults.lambdas` — the lambda the workers run: one ``O_APPEND`` write per call;
* :mod:`faults.driver` — the publisher: keys with sequence numbers, delays, an idempotency key
  on every publish, ambiguous publishes retried with the same key;
* :mod:`faults.cluster` — the processes (serve nodes, workers) and the faults done to them;
* :mod:`faults.scenarios` — the runs: kill -9 cycles, SIGSTOP, disk full, two PostgreSQL
  nodes, and the negative control;
* :mod:`faults.check` — the checker: lost, duplicated, reordered, early, stored twice;
* ``python -m faults`` (``make faults``) — the long run, and the table in docs/reliability.md.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The end-to-end suite's process helpers (tests/e2e/conftest.py) are imported as ``conftest``,
# as its tests import them; appended, so that nothing of ours is shadowed.
_E2E = str(ROOT / "tests" / "e2e")
if _E2E not in sys.path:
    sys.path.append(_E2E)
