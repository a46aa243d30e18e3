import Prometheus

/// What the worker counts, for Prometheus to scrape from `GET /metrics`, all named
/// `articles_fcgi_…`. Counters and gauges are atomics; labelled series are looked up in the
/// registry (under its lock) once per thread and label set, through `ThreadMetrics`.
package final class Metrics: Sendable {
    package let registry = PrometheusCollectorRegistry()
    package let inFlight: Gauge
    package let tokenCacheHits: Counter
    package let tokenCacheMisses: Counter
    package let keyFetches: Counter
    package let keyFetchFailures: Counter
    package let databaseErrors: Counter
    package let databaseReconnects: Counter
    package let databaseSessions: Gauge
    package let feedUp: Gauge
    package let feedLag: Gauge
    package let feedLosses: Counter
    package let cacheWaits: Counter
    package let cacheBypasses: Counter
    package let articleCreateStatements: Counter
    package let articleCreatesQueued: Gauge
    package let throttledReads: Counter
    package let throttledWrites: Counter
    package let fastcgiConnections: Counter
    package let temporarySlots: Gauge
    package let persistentSlots: Gauge
    package let slotsRetainedWAL: Gauge

    /// Request durations, in seconds: 0.25 ms to 2.5 s.
    package static let buckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500),
    ]

    package init() {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "articles_fcgi", metricName: metric, unitName: unit, helpText: help)
        }
        inFlight = registry.makeGauge(descriptor: name("requests", "in_flight", "Requests being served now."))
        let cache = name("token_cache", "total", "Verified-token cache lookups, by result (a miss verifies RS256).")
        tokenCacheHits = registry.makeCounter(descriptor: cache, labels: [("result", "hit")])
        tokenCacheMisses = registry.makeCounter(descriptor: cache, labels: [("result", "miss")])
        let fetches = name("key_fetches", "total", "Loads of the signing keys (JWKS), by result.")
        keyFetches = registry.makeCounter(descriptor: fetches, labels: [("result", "ok")])
        keyFetchFailures = registry.makeCounter(descriptor: fetches, labels: [("result", "failed")])
        databaseErrors = registry.makeCounter(
            descriptor: name("database_errors", "total", "Requests that failed on a database error (answered 503 or 500)."))
        databaseReconnects = registry.makeCounter(
            descriptor: name("database_reconnects", "total", "Serving loops' connections made again after one was lost."))
        databaseSessions = registry.makeGauge(
            descriptor: name(
                "database", "sessions",
                "PostgreSQL connections the serving loops hold now (two per loop, more while statements are stuck; the change feed's apart)."))
        feedUp = registry.makeGauge(
            descriptor: name("change_feed", "up", "1 while the change feed follows the database (logical decoding), else 0."))
        feedLag = registry.makeGauge(
            descriptor: name("change_feed_lag", "seconds", "Time from the commit of the last change the feed applied to its applying."))
        feedLosses = registry.makeCounter(
            descriptor: name("change_feed_losses", "total", "Times the change feed's connection failed or went silent."))
        let freshness = name(
            "cache_checks", "total",
            "Requests that found the change feed behind the database's WAL: waited for it, or bypassed the caches.")
        cacheWaits = registry.makeCounter(descriptor: freshness, labels: [("result", "waited")])
        cacheBypasses = registry.makeCounter(descriptor: freshness, labels: [("result", "bypassed")])
        articleCreateStatements = registry.makeCounter(
            descriptor: name(
                "article_create_statements", "total",
                "Statements that checked a token's user and inserted for POST /articles/ (requests that arrive together share one)."))
        articleCreatesQueued = registry.makeGauge(
            descriptor: name("article_creates", "queued", "POST /articles/ requests waiting for the statement in flight to end."))
        let throttled = name("throttled", "total", "Requests refused 429 by a per-principal rate limit, by kind (read or write).")
        throttledReads = registry.makeCounter(descriptor: throttled, labels: [("kind", "read")])
        throttledWrites = registry.makeCounter(descriptor: throttled, labels: [("kind", "write")])
        fastcgiConnections = registry.makeCounter(
            descriptor: name(
                "fastcgi_connections", "total",
                "FastCGI connections the worker accepted: nginx opens one for each request in flight beyond the connections it keeps."))
        let slots = name(
            "replication_slots", "",
            "The cluster's replication slots when /metrics was read, by kind: the workers' feeds use temporary ones; a persistent "
                + "logical slot no worker made lets its role read every change (check-config --database names it).")
        temporarySlots = registry.makeGauge(descriptor: slots, labels: [("kind", "temporary")])
        persistentSlots = registry.makeGauge(descriptor: slots, labels: [("kind", "persistent")])
        slotsRetainedWAL = registry.makeGauge(
            descriptor: name("replication_slots_retained_wal", "bytes", "WAL the cluster's replication slots hold back, together."))
    }

    fileprivate func requests(route: String, status: Int) -> Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "articles_fcgi", metricName: "requests", unitName: "total", helpText: "Requests answered, by route and status."),
            labels: [("route", route), ("status", String(status))])
    }

    fileprivate func durations(route: String) -> DurationHistogram {
        registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                namespace: "articles_fcgi", metricName: "request_duration", unitName: "seconds",
                helpText: "Time the worker took to answer a request, from its arrival whole to its response, by route."),
            labels: [("route", route)], buckets: Self.buckets)
    }

    fileprivate func refusals(reason: String) -> Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "articles_fcgi", metricName: "refusals", unitName: "total",
                helpText: "Requests refused by authentication, by the reason given to the client."),
            labels: [("reason", reason)])
    }

    /// Everything, in Prometheus' text format.
    package func exposition() -> [UInt8] { registry.emitToBuffer() }
}

/// One serving loop's handles on the labelled series it has used.
package final class LoopMetrics {
    package let shared: Metrics
    private struct RequestKey: Hashable {
        let route: String
        let status: Int
    }
    private var requests: [RequestKey: Counter] = [:]
    private var durations: [String: DurationHistogram] = [:]
    private var refusals: [String: Counter] = [:]

    package init(_ shared: Metrics) { self.shared = shared }

    package func answered(route: String, status: Int, after duration: Duration) {
        let key = RequestKey(route: route, status: status)
        let counter = requests[key] ?? shared.requests(route: route, status: status)
        requests[key] = counter
        counter.increment()
        let histogram = durations[route] ?? shared.durations(route: route)
        durations[route] = histogram
        histogram.record(duration)
    }

    package func refused(reason: String) {
        let counter = refusals[reason] ?? shared.refusals(reason: reason)
        refusals[reason] = counter
        counter.increment()
    }
}
