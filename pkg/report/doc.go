// Package report keeps the client's own account of a run and renders it, live
// and at the end, as text for people and JSON for scripts.
//
//	flow.Session --events--> Recorder (flow.Observer) --> Summary --> text | JSON
//
// Recorder aggregates across connections with atomics on the hot path; the
// write-blocked percentiles come from an HDR histogram.
package report
