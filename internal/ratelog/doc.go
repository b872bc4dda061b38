// Package ratelog logs at a bounded rate per reason: a peer that sends
// garbage ten thousand times a second costs ten thousand counter
// increments, not ten thousand log lines.
//
//	Warn(reason, msg, ...) -> token bucket of reason -> slog (with "suppressed": lines dropped since the last one)
//
// Reasons must come from a small fixed set (the metrics' reasons), since
// each keeps a bucket.
package ratelog
