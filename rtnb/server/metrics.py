"""``/metrics`` in Prometheus text format, and ``/healthz``.

The hub counts with plain integers (see :class:`~rtnb.server.hub.HubStats`) so
the hot path pays nothing for metrics; a collector turns them into Prometheus
families only when scraped. Each hub has its own registry, so several hubs in
one process (tests, notebooks) never mix their numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._http import HttpRouteHandler
from .hub import Hub

__all__ = ["HealthHandler", "MetricsCollector", "MetricsHandler", "render_metrics"]


class MetricsCollector(Collector):
    """Reads a hub's counters at scrape time."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub, stats = self.hub, self.hub.stats
        yield GaugeMetricFamily("rtnb_connections", "Open client connections.", value=hub.connection_count)
        yield GaugeMetricFamily(
            "rtnb_subscriptions", "Patterns held by connections.", value=hub.fanout.subscription_count()
        )
        yield GaugeMetricFamily("rtnb_groups", "Distinct subscription sets.", value=len(hub.fanout.groups))
        yield GaugeMetricFamily("rtnb_hub_tasks", "Background tasks the hub runs.", value=hub.task_count)
        yield GaugeMetricFamily(
            "rtnb_heartbeat_connections", "Connections tracked by heartbeat timers.", value=hub.heartbeat_count
        )
        yield CounterMetricFamily(
            "rtnb_write_timeouts", "Connections closed because the peer took no bytes.", value=stats.write_timeouts
        )
        yield CounterMetricFamily(
            "rtnb_connections_opened", "Connections accepted since start.", value=stats.connections_opened
        )
        yield CounterMetricFamily("rtnb_messages_in", "Messages published.", value=stats.messages_in)
        yield CounterMetricFamily("rtnb_messages_out", "Message deliveries to subscribers.", value=stats.messages_out)
        yield CounterMetricFamily("rtnb_batches_out", "Group batches flushed.", value=stats.batches_out)
        yield CounterMetricFamily(
            "rtnb_slow_consumer_lags", "Times a subscriber went over its queue limit.", value=stats.lag_events
        )
        yield CounterMetricFamily(
            "rtnb_slow_consumer_closes", "Subscribers closed for lagging too long.", value=stats.slow_consumer_closes
        )
        yield CounterMetricFamily("rtnb_gaps", "Gap notices sent.", value=stats.gaps_sent)
        errors = CounterMetricFamily("rtnb_errors", "Errors reported to clients, by code.", labels=["code"])
        for code, count in sorted(stats.errors.items()):
            errors.add_metric([code], count)
        yield errors
        depths = hub.queue_depths()
        yield GaugeMetricFamily("rtnb_queue_bytes", "Outbound bytes buffered, all connections.", value=sum(depths))
        yield GaugeMetricFamily(
            "rtnb_queue_bytes_max", "Largest outbound buffer of one connection.", value=max(depths, default=0)
        )
        health = hub.backplane.health()
        yield GaugeMetricFamily(
            "rtnb_backplane_up", "1 when the backplane is healthy.", value=int(bool(health.get("ok")))
        )
        if "topics" in health:
            yield GaugeMetricFamily("rtnb_topics", "Topics with history.", value=health["topics"])
        if "history_bytes" in health:
            yield GaugeMetricFamily("rtnb_history_bytes", "Bytes retained in history.", value=health["history_bytes"])
        yield from self.collect_components()

    def collect_components(self) -> Iterator[Metric]:
        """Families of every registered component, labelled ``component=NAME``."""
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for name, component in self.hub.components.items():
            for metric in component.metrics():
                family = families.get(metric.name)
                if family is None:
                    kind = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
                    family = families[metric.name] = kind(
                        metric.name, metric.documentation, labels=["component", *metric.labels]
                    )
                family.add_metric([name, *metric.labels.values()], metric.value)
        yield from families.values()


def render_metrics(hub: Hub) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(hub))
    return generate_latest(registry)


class MetricsHandler(HttpRouteHandler):
    """The hub's counters in Prometheus text format (after the hub's ``Host`` check)."""

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(render_metrics(self.hub))


class HealthHandler(HttpRouteHandler):
    """200 with the hub's state when healthy, 503 with the same body when not."""

    def get(self) -> None:
        health = self.hub.health()
        self.set_status(200 if health["status"] == "ok" else 503)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(orjson.dumps(health))
