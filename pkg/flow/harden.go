package flow

import (
	"time"
)

// Hardening: what a listener does with peers that misbehave. See
// docs/SAFETY.md for the limits, their defaults and how they interact with
// deliberate pauses.

// DefaultMaxMessageSize is the largest WebSocket message a peer may send by
// default: one payload message of the largest size (MaxPayloadSize).
const DefaultMaxMessageSize = MaxPayloadSize

// DefaultControlWriteTimeout bounds each control message (ack, fin) written
// on a connection on which this side writes no payload: a peer that never
// reads its acks cannot hold the session forever. When this side writes
// payload too, control messages share the direction with it and wait behind
// its backpressure, which is what the lab measures, so they get no deadline.
const DefaultControlWriteTimeout = 30 * time.Second

// writeDeadliner is implemented by both transports: a deadline for the
// control writes that follow.
type writeDeadliner interface {
	setWriteDeadline(t time.Time) error
}
