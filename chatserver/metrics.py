"""Prometheus metrics: one CollectorRegistry per application (no module globals) and the HTTP
request metrics, which the request middleware (middleware.py) records for every request.

The registry lives on app[METRICS_REGISTRY] (chatserver/keys.py). To add a metric elsewhere,
create it against that registry where the component is wired, as realtime/setup.py does:

    Gauge("chatserver_rooms", "Ticket rooms with a connection", registry=app[METRICS_REGISTRY])

GET /metrics (handlers/metrics.py) renders the registry in the format the scraper asks for.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, PlatformCollector, ProcessCollector

# Labels must have a bounded set of values: unknown methods and unmatched paths are folded
# into one value each, or any client could grow the registry without limit.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
# 499 is nginx's "client closed request": the client went away before we answered.
CLIENT_CLOSED = 499


def create_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and GC collectors the default one has."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def route_label(request: web.Request) -> str:
    """The route's name, else its path template: never the raw path (ids would explode it)."""
    route = request.match_info.route
    if route.name:
        return route.name
    if route.resource is not None:
        return route.resource.canonical
    return UNMATCHED_ROUTE


def method_label(request: web.Request) -> str:
    return request.method if request.method in KNOWN_METHODS else "other"


class HttpMetrics:
    """Request count and latency, labelled by route, method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "chatserver_http_requests",
            "HTTP requests handled (WebSocket upgrades count once, with status 101)",
            ("route", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "chatserver_http_request_duration_seconds",
            "Time to answer an HTTP request (WebSocket sessions are not included: they last minutes)",
            ("route", "method", "status"),
            registry=registry,
        )
        # labels() checks and locks on every call (~1.6 µs each, twice per request); the children it
        # returns never change (we never remove label sets), so each is looked up once. Bounded
        # like the labels themselves.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram | None]] = {}

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        key = (route_label(request), method_label(request), status)
        children = self._children.get(key)
        if children is None:
            labels = (key[0], key[1], str(status))
            # No latency for WebSocket upgrades (101): the "request" lasts as long as the socket.
            children = (self.requests.labels(*labels), self.latency.labels(*labels) if status != 101 else None)
            self._children[key] = children
        requests, latency = children
        requests.inc()
        if latency is not None:
            latency.observe(seconds)
