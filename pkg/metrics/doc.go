// Package metrics exports what the programs observe as Prometheus metrics:
// the core flow.Observer, the adapters of pkg/sockstat's sampler and
// netstat counters as collectors, and the /metrics handler.
//
//	flow.Session --events--> Metrics (flow.Observer) ----------------+
//	flow.Session --Open/Closing--> sockstat.Sampler                  |
//	                                  | Stats, at each scrape        v
//	                                  +--> SocketCollector ---> registry --> /metrics
//	sockstat.ReadNetstat --> NetstatCollector -------------------------^
//
// New registers every metric on the registerer it is given (tests pass a
// fresh prometheus.NewRegistry and read values back). Every labelled series
// is created at zero for each protocol at start, so dashboards and alerts
// see a zero instead of a gap. No label holds anything unbounded: series are
// aggregated across connections. The package reads no socket itself:
// NewSocketSampler builds the sampler and registers its collector.
package metrics
