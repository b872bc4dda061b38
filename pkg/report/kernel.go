package report

import (
	"fmt"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// KernelSource is where a Recorder reads the kernel's view of this
// side's sockets, summed over connections: what the client's write calls
// only see as blocking. It is the socket sampler (a *sockstat.Sampler
// among the run's observers); the report itself reads no sockets. A field
// missing from Totals.Has is unknown, not zero, and the report leaves it
// out.
type KernelSource interface {
	Totals() sockstat.Totals
	// ResetPeak starts a new largest send queue, for this run.
	ResetPeak()
}

// SetKernel tells the recorder where to read the kernel's view of the run
// (nil: nowhere, and the report leaves it out). Call it before the run:
// the source's counters are cumulative (a sampler counts from its start,
// over every run of the process), so the recorder reads them once here and
// reports only what they grew by since; and it starts the source's new
// send-queue peak.
func (r *Recorder) SetKernel(src KernelSource) {
	r.kernel = src
	if src == nil {
		return
	}
	src.ResetPeak()
	r.kernelBase = src.Totals()
}

// kernelNow is the kernel's view of the run so far, nil when not known.
func (r *Recorder) kernelNow() *sockstat.Totals {
	if r.kernel == nil {
		return nil
	}
	t := r.kernel.Totals().Since(r.kernelBase)
	return &t
}

// fillKernel fills the kernel part of a summary: shares are of the
// connections' combined time, like BlockedShare.
func (s *Summary) fillKernel(k *sockstat.Totals, secs float64, conns int) {
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
	if k.Has&sockstat.FieldPeerWindow != 0 {
		s.PeerWindowZeroSeconds = ptr(k.PeerWindowZero.Seconds())
		s.PeerWindowZeroShare = share(k.PeerWindowZero)
	}
	if k.Has&sockstat.FieldLimited != 0 {
		s.RwndLimitedSeconds = ptr(k.RwndLimited.Seconds())
		s.RwndLimitedShare = share(k.RwndLimited)
		s.SndbufLimitedSeconds = ptr(k.SndbufLimited.Seconds())
	}
	if k.Has&sockstat.FieldSendQueue != 0 {
		s.PeakSendQueueBytes = ptr(int64(k.PeakConnSendQueue))
	}
}

func ptr[T any](v T) *T { return &v }

// writeKernelText prints the kernel rows of the text report. The window
// the kernel sees is the client's peer's: the server's only when nothing
// sits between them, so the rows say "the peer", and which peer as far as
// the verdict knows the path (Verdict.PeerWords). Times are summed over
// the connections, and say so when there are several.
func (s Summary) writeKernelText(row func(k, format string, a ...any)) {
	peer := "the peer"
	if s.Verdict != nil {
		peer = s.Verdict.PeerWords()
	}
	conns := max(s.Connections, 1)
	if s.PeerWindowZeroSeconds != nil {
		zero := "zero for "
		if conns > 1 {
			zero = "zero "
		}
		row("peer window", "%s%s%s: the kernel of %s told this client to stop",
			zero, summed(*s.PeerWindowZeroSeconds, conns), percentEach(s.PeerWindowZeroShare, conns), peer)
	}
	if s.RwndLimitedSeconds != nil {
		row("rwnd-limited", "%s%s, held back by the peer's receive window; %s by the own send buffer",
			summed(*s.RwndLimitedSeconds, conns), percentEach(s.RwndLimitedShare, conns), seconds(*s.SndbufLimitedSeconds))
	}
	if s.PeakSendQueueBytes != nil {
		row("send queue", "peak %s in one connection's socket (%d bytes)",
			config.HumanBytes(float64(*s.PeakSendQueueBytes)), *s.PeakSendQueueBytes)
	}
}

// percentEach prints ", N% of the run" for a known share, with "each"
// when it is the share of each of several connections.
func percentEach(share *float64, conns int) string {
	switch {
	case share == nil:
		return ""
	case conns > 1:
		return fmt.Sprintf(", %.0f%% of the run each", 100**share)
	}
	return fmt.Sprintf(", %.0f%% of the run", 100**share)
}

// summed prints a time summed over conns connections: "2.8s", or "in all
// 9.96s over 4 connections, 2.49s per connection".
func summed(secs float64, conns int) string {
	if conns <= 1 {
		return seconds(secs)
	}
	return fmt.Sprintf("in all %s over %d connections, %s per connection", seconds(secs), conns, seconds(secs/float64(conns)))
}
