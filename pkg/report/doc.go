// Package report keeps the client's own account of a run and renders it, live
// and at the end, as text for people and JSON for scripts.
//
//	flow.Session --events--> Recorder (flow.Observer) ---+
//	sockstat.Sampler --Totals (SetKernel)----------------+--> Summary --> text | JSON
//	verdict.Observer --Verdict, Live (SetVerdict)--------+
//
// Recorder aggregates across connections with atomics on the hot path; the
// write-blocked percentiles come from an HDR histogram. The kernel's view
// comes from the socket sampler, counted from SetKernel so that each run of
// a process reports its own; the report reads no socket.
package report
