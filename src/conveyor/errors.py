"""Conveyor's one exception tree.

Branches are chosen by how the caller should react::

    ConveyorError
    ├── InvalidRequest           bad input: 4xx naming the field and the rule (HTTP 400/413/422)
    │   ├── SchemaViolation      a payload is off its topic's JSON Schema (HTTP 422)
    │   ├── IncompatibleSchema   a schema version breaks its subject's compatibility (409)
    │   └── FilterError          a subscription's filter pattern is invalid (400)
    ├── NotFound                 the named topic, subscription or event does not exist (404)
    ├── Conflict                 exists with another definition / idempotency key reused (409)
    ├── RateLimited              the platform asks the caller to slow down (429)
    ├── PublisherFull            the SDK's batching publisher holds max_pending events already
    ├── StoreUnavailable         the durable store could not commit; nothing was acknowledged (503)
    ├── LeaseLost                this node no longer holds a partition: its write was refused
    ├── DeliveryError            a push to a lambda did not produce per-event results
    │   ├── SubscriberTimeout    no answer within the subscription's push timeout
    │   └── SubscriberRejected   the lambda answered with a non-success HTTP status
    ├── SignatureError           a push's signature was refused: the worker answers 401
    ├── RegistrationError        the platform refused a worker's registration, or was unreachable
    └── SupervisorError          the autoscaling supervisor gave up: its workers cannot start

Control signals raised by handlers (``Retry``, ``Fatal``) are exceptions but not errors: they
live in :mod:`conveyor.execution.results` and are not part of this tree.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Root of every error Conveyor raises.

    Attributes:
        code: a stable machine-readable code, also sent in HTTP error bodies.
        status: the HTTP status this error maps to.
    """

    code = "conveyor_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ConveyorError):
    """The request is malformed or breaks a limit.

    Attributes:
        field: JSON pointer (or dotted name) of the offending field, when one is to blame.
        rule: the rule broken, such as ``type``, ``required``, ``max_size``.
        index: the event's position in a batch, when one event is to blame.
        errors: every problem found, for a batch (each an ``InvalidRequest``).
        old: for a schema change, the old type or value at ``field``.
        new: for a schema change, the new one.
        schema_id: the registry schema the payload was checked against, when one was.
        schema_version: that schema's version in its subject.
    """

    code = "invalid_request"
    status = 400
    old: str | None = None
    new: str | None = None
    schema_id: int | None = None
    schema_version: int | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rule: str | None = None,
        status: int = 400,
        index: int | None = None,
        errors: list[InvalidRequest] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.status = status
        self.index = index
        self.errors: list[InvalidRequest] = errors or []


class SchemaViolation(InvalidRequest):
    """A payload does not conform to its topic's JSON Schema."""

    code = "schema_violation"

    def __init__(
        self,
        message: str,
        *,
        field: str,
        rule: str,
        index: int | None = None,
        errors: list[InvalidRequest] | None = None,
    ) -> None:
        super().__init__(message, field=field, rule=rule, status=422, index=index, errors=errors)


class IncompatibleSchema(InvalidRequest):
    """A schema version breaks its subject's compatibility rule; ``errors`` lists each
    breaking change (``field``, ``rule``, ``old``, ``new``)."""

    code = "incompatible_schema"

    def __init__(self, message: str, *, errors: list[InvalidRequest]) -> None:
        super().__init__(message, rule="compatibility", status=409, errors=errors)


class NotFound(ConveyorError):
    """The named resource does not exist."""

    code = "not_found"
    status = 404

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} does not exist")
        self.kind = kind
        self.name = name


class Conflict(ConveyorError):
    """The resource exists with another definition, or a key was reused differently."""

    code = "conflict"
    status = 409


class RateLimited(ConveyorError):
    """The caller must slow down.

    Attributes:
        retry_after: seconds after which a retry may succeed.
    """

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PublisherFull(ConveyorError):
    """A batching publisher already holds its ``max_pending`` events (raised by the SDK's
    ``submit``, never by the node); wait for some to be answered, or use ``publish``."""

    code = "publisher_full"
    status = 503

    def __init__(self, max_pending: int) -> None:
        super().__init__(
            f"the publisher already holds its max_pending of {max_pending} events awaiting "
            "their answer; await publish() instead of submit(), or raise max_pending"
        )
        self.max_pending = max_pending


class StoreUnavailable(ConveyorError):
    """The durable store failed; the operation was not acknowledged and may be retried."""

    code = "store_unavailable"
    status = 503


class LeaseLost(ConveyorError):
    """Another node took over a partition; this node's write for it was refused (fencing).

    Attributes:
        subscription: the subscription whose progress was refused, when one was.
    """

    code = "lease_lost"
    status = 409

    def __init__(self, message: str, *, subscription: str | None = None) -> None:
        super().__init__(message)
        self.subscription = subscription


class DeliveryError(ConveyorError):
    """A push to a lambda endpoint failed as a whole."""

    code = "delivery_error"
    status = 502


class SubscriberTimeout(DeliveryError):
    """The lambda did not answer within the push timeout."""

    code = "subscriber_timeout"


class SubscriberRejected(DeliveryError):
    """The lambda answered with a non-success HTTP status.

    Attributes:
        http_status: the status the lambda answered with.
        retry_after: its Retry-After, in seconds, when it sent one.
    """

    code = "subscriber_rejected"

    def __init__(self, http_status: int, *, retry_after: float | None = None) -> None:
        super().__init__(f"lambda answered HTTP {http_status}")
        self.http_status = http_status
        self.retry_after = retry_after


class FilterError(InvalidRequest, ValueError):
    """A filter pattern is invalid.

    Attributes:
        field: JSON pointer to the offending place in the pattern (``""`` for the whole of it).
        rule: the rule broken (see the module's documentation for the list).
        message: what is wrong, naming the place.
    """

    field: str
    rule: str

    def __init__(self, message: str, *, field: str, rule: str) -> None:
        where = f"at {field}" if field else "at the top level"
        super().__init__(f"invalid filter {where}: {message}", field=field, rule=rule)


class RegistrationError(ConveyorError):
    """The platform refused a worker's registration, or could not be reached in time.

    Attributes:
        http_status: the platform's answer, or ``None`` when it was unreachable.
        error_code: the ``code`` of the platform's error body.
        field: the field the platform blamed.
        rule: the rule that field broke.
    """

    code = "registration_failed"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_code: str | None = None,
        field: str | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.field = field
        self.rule = rule


class SupervisorError(ConveyorError):
    """The supervisor gave up: its worker processes cannot start (see :attr:`message`)."""

    code = "supervisor_failed"


class SignatureError(ConveyorError):
    """A push's signature headers were refused; the worker answers 401.

    Attributes:
        reason: why, as a stable code (a :class:`conveyor.wire.signing.Reason`).
        message: what was wrong, for a person (never reveals an expected signature).
    """

    code = "invalid_signature"
    status = 401

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
