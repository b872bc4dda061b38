package report

import (
	"fmt"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
)

// Kernel is the kernel's view of this side's writing sockets, summed over
// connections: what the client's write calls only see as blocking. It comes
// from a socket sampler (pkg/metrics) through Recorder.SetKernel; the report
// itself reads no sockets. A Has flag is false when the kernel does not
// provide that statistic: its values are then unknown, not zero.
type Kernel struct {
	// HasPeerWindow: PeerWindowZero is known (Linux >= 5.4).
	HasPeerWindow bool
	// PeerWindowZero is the time the server (or the next hop) advertised a
	// zero receive window, summed over connections.
	PeerWindowZero time.Duration
	// HasLimited: RwndLimited, SndbufLimited and Busy are known (Linux >= 4.10).
	HasLimited bool
	// RwndLimited is the time the kernel could not send because of the
	// peer's receive window; SndbufLimited because this side's send buffer
	// was full; Busy, the time it had data to send. Summed over connections.
	RwndLimited, SndbufLimited, Busy time.Duration
	// HasSendQueue: SendQueue and PeakSendQueue are known.
	HasSendQueue bool
	// SendQueue is the bytes in the send queues now, summed; PeakSendQueue
	// the largest send queue any one connection had.
	SendQueue, PeakSendQueue int64
}

// SetKernel tells the recorder where to read the kernel's view of the run
// (nil: nowhere, and the report leaves it out). Call it before the run: the
// times kernel returns are cumulative (a sampler counts from its start, over
// every run of the process), so the recorder reads them once here and
// reports only what they grew by since. PeakSendQueue is taken as is: the
// source starts a new peak for each run.
func (r *Recorder) SetKernel(kernel func() Kernel) {
	if kernel == nil {
		r.kernel = nil
		return
	}
	base := kernel()
	r.kernel = func() Kernel {
		k := kernel()
		k.PeerWindowZero -= base.PeerWindowZero
		k.RwndLimited -= base.RwndLimited
		k.SndbufLimited -= base.SndbufLimited
		k.Busy -= base.Busy
		return k
	}
}

// fillKernel fills the kernel part of a summary: shares are of the
// connections' combined time, like BlockedShare.
func (s *Summary) fillKernel(k *Kernel, secs float64, conns int) {
	if k == nil {
		return
	}
	share := func(d time.Duration) *float64 {
		if secs <= 0 {
			return nil
		}
		v := d.Seconds() / (secs * float64(conns))
		return &v
	}
	if k.HasPeerWindow {
		s.PeerWindowZeroSeconds = ptr(k.PeerWindowZero.Seconds())
		s.PeerWindowZeroShare = share(k.PeerWindowZero)
	}
	if k.HasLimited {
		s.RwndLimitedSeconds = ptr(k.RwndLimited.Seconds())
		s.RwndLimitedShare = share(k.RwndLimited)
		s.SndbufLimitedSeconds = ptr(k.SndbufLimited.Seconds())
	}
	if k.HasSendQueue {
		s.PeakSendQueueBytes = ptr(k.PeakSendQueue)
	}
}

func ptr[T any](v T) *T { return &v }

// writeKernelText prints the kernel rows of the text report.
func (s Summary) writeKernelText(row func(k, format string, a ...any)) {
	if s.PeerWindowZeroSeconds != nil {
		row("server window", "zero for %s%s (the server's kernel told this client to stop)",
			seconds(*s.PeerWindowZeroSeconds), percent(s.PeerWindowZeroShare))
	}
	if s.RwndLimitedSeconds != nil {
		row("rwnd-limited", "%s%s held back by the server's receive window; %s by the own send buffer",
			seconds(*s.RwndLimitedSeconds), percent(s.RwndLimitedShare), seconds(*s.SndbufLimitedSeconds))
	}
	if s.PeakSendQueueBytes != nil {
		row("send queue", "peak %s in one connection's socket (%d bytes)",
			config.HumanBytes(float64(*s.PeakSendQueueBytes)), *s.PeakSendQueueBytes)
	}
}

// percent prints ", N% of the run" for a known share.
func percent(share *float64) string {
	if share == nil {
		return ""
	}
	return fmt.Sprintf(", %.0f%% of the run", 100**share)
}
