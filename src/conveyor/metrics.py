"""Prometheus metrics of a node, in a registry owned by the node (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300)


class Metrics:
    """Every metric a node exports.

    Updated per batch on the hot path, never per event, except lateness which is observed for
    delayed events only.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.published = Counter(
            "conveyor_published_events", "Events acknowledged by publish", ["topic"], registry=r
        )
        self.publish_rejected = Counter(
            "conveyor_publish_rejected",
            "Publish requests refused, by reason",
            ["reason"],
            registry=r,
        )
        self.results = Counter(
            "conveyor_delivery_results",
            "Per-event delivery results",
            ["subscription", "outcome"],
            registry=r,
        )
        self.pushes = Counter(
            "conveyor_pushes", "Pushes sent to lambdas", ["subscription"], registry=r
        )
        self.throttles = Counter(
            "conveyor_throttles", "Pushes answered with a throttle", ["subscription"], registry=r
        )
        self.dead = Counter(
            "conveyor_dead_events", "Events that went dead", ["subscription"], registry=r
        )
        self.push_seconds = Histogram(
            "conveyor_push_seconds",
            "Time from push to answer",
            ["subscription"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "conveyor_delivery_lateness_seconds",
            "First push time minus deliver_at, for delayed events",
            ["subscription"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.concurrency_limit = Gauge(
            "conveyor_concurrency_limit",
            "The adaptive concurrency limit of a subscription on this node",
            ["subscription"],
            registry=r,
        )
        self.dropped = Counter(
            "conveyor_dropped_events",
            "Events dropped unpushed by a purge of the backlog",
            ["subscription"],
            registry=r,
        )
        self.timers_fired = Counter(
            "conveyor_timers_fired", "Delayed events appended to the log when due", registry=r
        )
        self.timers_adopted = Counter(
            "conveyor_timers_adopted",
            "Overdue timers that another node left behind, fired by this one",
            registry=r,
        )
        self.release_state = Gauge(
            "conveyor_release_state",
            "1 for each release's current state (stable, canary, pending, rolled_back)",
            ["lambda", "version", "state"],
            registry=r,
        )
        self.canary_share = Gauge(
            "conveyor_release_canary_share",
            "The share of a lambda's pushes its canary gets (0: no canary)",
            ["lambda"],
            registry=r,
        )
        self.release_decisions = Counter(
            "conveyor_release_decisions",
            "Canaries promoted or rolled back by this node's evaluation",
            ["lambda", "decision"],
            registry=r,
        )
