"""The curated public surface of ``conveyor`` (like httpx's ``test_exported_members``)."""

from __future__ import annotations

import types

import conveyor

EXPECTED = {
    "AsyncClient",
    "AsyncPublisher",
    "BatchSettings",
    "Client",
    "Compatibility",
    "Conflict",
    "Control",
    "ConveyorError",
    "DeliveryError",
    "DeliveryFormat",
    "DeliveryState",
    "EventContext",
    "Fatal",
    "HealthPolicy",
    "IncompatibleSchema",
    "InvalidRequest",
    "Lambda",
    "NotFound",
    "Priority",
    "Publisher",
    "PublisherFull",
    "RateLimit",
    "RateLimited",
    "ReleasePolicy",
    "Retry",
    "RetryPolicy",
    "SchemaSettings",
    "SchemaType",
    "SchemaViolation",
    "StoreUnavailable",
    "Subscription",
    "SubscriberRejected",
    "SubscriberTimeout",
    "Topic",
    "Worker",
    "__version__",
}
ERRORS = {
    "Conflict",
    "DeliveryError",
    "IncompatibleSchema",
    "InvalidRequest",
    "NotFound",
    "PublisherFull",
    "RateLimited",
    "SchemaViolation",
    "StoreUnavailable",
    "SubscriberRejected",
    "SubscriberTimeout",
}


def test_all_exports_exactly_the_expected_names() -> None:
    assert len(conveyor.__all__) == len(set(conveyor.__all__))
    assert set(conveyor.__all__) == EXPECTED


def test_every_exported_name_resolves() -> None:
    for name in conveyor.__all__:
        assert getattr(conveyor, name) is not None, name


def test_no_public_name_is_left_out_of_all() -> None:
    # Given the package's namespace, less its sub-modules and `from __future__ import annotations`
    public = {
        name
        for name, value in vars(conveyor).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }

    # Then every public object in it is exported
    assert public <= set(conveyor.__all__)


def test_every_exported_error_is_a_conveyor_error() -> None:
    for name in ERRORS:
        assert issubclass(getattr(conveyor, name), conveyor.ConveyorError), name
