// Package metrics turns what pkg/flow observes into Prometheus metrics.
//
//	flow.Session --events--> Metrics (flow.Observer) --> registry --> /metrics
//
// New registers every metric on the registerer it is given (tests pass a
// fresh prometheus.NewRegistry and read values back). Every labelled series
// is created at zero for each protocol at start, so dashboards and alerts
// see a zero instead of a gap. No label holds anything unbounded: series are
// aggregated across connections.
package metrics
