package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/config"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// Run describes what was asked for, for the report's header.
type Run struct {
	RunID       string
	Target      string
	Direction   flow.Direction
	Connections int
	// Streams is, with --streams on HTTP/2 or gRPC, each connection's
	// streams: every stream is a run of its own; 0 when each connection
	// is one run.
	Streams        int
	PayloadSize    int
	Rate           float64 // messages per second per connection; 0: unlimited
	StallThreshold time.Duration
	// Fleet is this client's place in a fleet (nil: not in one).
	Fleet *Fleet
	// SlowStreams is --slow-streams K: streams 0..K-1 of each connection
	// are read slowly, the others at full speed; the report compares the
	// two groups only when 0 < K < Streams.
	SlowStreams int
	// Start is when the run started, for the stream layer's "at" times
	// (zero: when the recorder was set up).
	Start time.Time
}

// Summary is the end-of-run report. Its JSON form is what --output json
// prints; the field names are part of the tool's interface.
type Summary struct {
	RunID       string         `json:"run_id"`
	Target      string         `json:"target"`
	Direction   flow.Direction `json:"direction"`
	Connections int            `json:"connections"`
	// Streams is how many streams the connections carried in all (each a
	// run of its own: the write figures sum over them), absent when the
	// target has no streams.
	Streams     int    `json:"streams,omitempty"`
	PayloadSize int    `json:"payload_size"`
	Completed   bool   `json:"completed"`
	Error       string `json:"error,omitempty"`
	FailedConns int64  `json:"failed_connections"`
	// NotConnected is how many of FailedConns never opened: the dial, the
	// TLS or WebSocket handshake or the hello failed (each attempt, with
	// --reconnect).
	NotConnected int64 `json:"not_connected"`
	// Reconnects counts attempts to connect again after a break
	// (--reconnect); a connection that broke counts in FailedConns even
	// when a reconnect carried its run to the end.
	Reconnects int64 `json:"reconnects"`

	DurationSeconds float64 `json:"duration_seconds"`
	BytesWritten    int64   `json:"bytes_written"`
	BytesAcked      int64   `json:"bytes_acked"`
	BytesRead       int64   `json:"bytes_read"`
	WriteCalls      int64   `json:"write_calls"`

	AskedMessagesPerSecond    float64 `json:"asked_messages_per_second"`
	AchievedMessagesPerSecond float64 `json:"achieved_messages_per_second"`
	WriteBytesPerSecond       float64 `json:"write_bytes_per_second"`
	ReadBytesPerSecond        float64 `json:"read_bytes_per_second"`

	BlockedSeconds        float64 `json:"blocked_seconds"`
	BlockedShare          float64 `json:"blocked_share"`
	StallThresholdSeconds float64 `json:"stall_threshold_seconds"`
	Stalls                int64   `json:"stalls"`
	LongestStallSeconds   float64 `json:"longest_stall_seconds"`
	WriteBlockedP50       float64 `json:"write_blocked_p50_seconds"`
	WriteBlockedP99       float64 `json:"write_blocked_p99_seconds"`
	PeakBytesInPipe       int64   `json:"peak_bytes_in_pipe"`

	// The kernel's view (see Kernel), absent when the kernel does not
	// provide it or socket sampling is off.
	PeerWindowZeroSeconds *float64 `json:"peer_window_zero_seconds,omitempty"`
	PeerWindowZeroShare   *float64 `json:"peer_window_zero_share,omitempty"`
	RwndLimitedSeconds    *float64 `json:"rwnd_limited_seconds,omitempty"`
	RwndLimitedShare      *float64 `json:"rwnd_limited_share,omitempty"`
	SndbufLimitedSeconds  *float64 `json:"sndbuf_limited_seconds,omitempty"`
	PeakSendQueueBytes    *int64   `json:"peak_send_queue_bytes,omitempty"`

	// Verdict: did the server's stop reach the client, and what did the
	// path absorb (see pkg/verdict); absent when the client does not write.
	Verdict *verdict.Verdict `json:"verdict,omitempty"`

	// StreamLayer: where the streams' writes waited (their window, their
	// connection's, TCP) and the layer where the stop was (pkg/verdict);
	// absent when the run had no streams.
	StreamLayer *verdict.StreamLayer `json:"stream_layer,omitempty"`

	// Timeline is the run sampled at a fixed interval (see Timeline),
	// absent unless the recorder kept one (KeepTimeline).
	Timeline *Timeline `json:"timeline,omitempty"`

	// Fleet: this client's place in a fleet of them (fleet.go); absent
	// when it runs alone.
	Fleet *Fleet `json:"fleet,omitempty"`
}

// Summarize builds the report from the recorder after the run.
func (r *Recorder) Summarize(run Run, elapsed time.Duration, runErr error) Summary {
	t := r.Totals()
	secs := elapsed.Seconds()
	conns := max(run.Connections, 1)
	streams := conns * max(run.Streams, 0)
	runs := conns // the write figures sum over runs: connections, or streams
	if streams > 0 {
		runs = streams
	}
	s := Summary{
		RunID: run.RunID, Target: run.Target, Direction: run.Direction, Connections: run.Connections, Streams: streams,
		PayloadSize: run.PayloadSize, Completed: runErr == nil, FailedConns: r.failed.Load(), NotConnected: r.notConnected.Load(),
		DurationSeconds: secs, BytesWritten: t.Written, BytesAcked: t.Acked, BytesRead: t.Read,
		WriteCalls: t.Writes, AskedMessagesPerSecond: run.Rate * float64(runs),
		BlockedSeconds: t.Blocked.Seconds(), StallThresholdSeconds: run.StallThreshold.Seconds(),
		Stalls: t.Stalls, LongestStallSeconds: time.Duration(r.longestNs.Load()).Seconds(),
		WriteBlockedP50: r.quantile(50).Seconds(), WriteBlockedP99: r.quantile(99).Seconds(),
		PeakBytesInPipe: t.PeakInPipe, Reconnects: r.reconnects.Load(), Fleet: run.Fleet,
	}
	if runErr != nil {
		s.Error = runErr.Error()
	}
	if secs > 0 {
		s.AchievedMessagesPerSecond = float64(t.Writes) / secs
		s.WriteBytesPerSecond = float64(t.Written) / secs
		s.ReadBytesPerSecond = float64(t.Read) / secs
		// Blocked time is summed over the runs, so the share is of their
		// combined time.
		s.BlockedShare = t.Blocked.Seconds() / (secs * float64(runs))
	}
	if !run.Direction.ClientWrites() {
		s.StallThresholdSeconds = run.StallThreshold.Seconds()
	}
	if run.Direction.ClientWrites() {
		s.fillKernel(t.Kernel, secs, conns)
		s.Verdict = r.verdictNow()
	}
	s.StreamLayer = r.streamLayerNow(run, t.Kernel)
	if g := r.streamGroupsNow(run, secs); g != nil && s.StreamLayer != nil {
		s.StreamLayer.StreamGroups = g
		s.StreamLayer.StreamsTied = verdict.StreamsTiedOf(*g, run.Rate > 0)
	}
	s.Timeline = r.finishTimeline(elapsed, t, runs)
	return s
}

// WriteJSON prints the summary as one JSON object.
func (s Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteText prints the summary for people.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	status := "completed"
	if !s.Completed {
		status = "FAILED: " + s.Error
	}
	fmt.Fprintf(&b, "\nbp-client report: run %s, %s, direction %s, %d connection(s)%s\n", s.RunID, s.Target, s.Direction, s.Connections, s.streamsWords())
	row := func(k, format string, a ...any) { fmt.Fprintf(&b, "  %-16s "+format+"\n", append([]any{k}, a...)...) }
	row("result", "%s", status)
	s.writeFleetText(row)
	row("duration", "%.2f s", s.DurationSeconds)
	if s.Direction.ClientWrites() {
		asked := "as fast as the path allows"
		if s.AskedMessagesPerSecond > 0 {
			asked = fmt.Sprintf("%.1f msg/s (%s/s)", s.AskedMessagesPerSecond, config.HumanBytes(s.AskedMessagesPerSecond*float64(s.PayloadSize)))
		}
		row("written", "%s in %d write calls (%d bytes)", config.HumanBytes(float64(s.BytesWritten)), s.WriteCalls, s.BytesWritten)
		row("rate", "%.1f msg/s, %s/s; asked: %s", s.AchievedMessagesPerSecond, config.HumanBytes(s.WriteBytesPerSecond), asked)
		ack := "all bytes read by the server"
		if s.BytesAcked != s.BytesWritten {
			ack = fmt.Sprintf("%s NOT acknowledged", config.HumanBytes(float64(s.BytesWritten-s.BytesAcked)))
		}
		row("acknowledged", "%d bytes (%s)", s.BytesAcked, ack)
		s.writeBlockedText(row)
		row("stalls", "%d (write calls blocked >= %s), longest %s", s.Stalls, seconds(s.StallThresholdSeconds), seconds(s.LongestStallSeconds))
		row("write blocked", "p50 %s, p99 %s", seconds(s.WriteBlockedP50), seconds(s.WriteBlockedP99))
		row("peak in pipe", "%s written but not yet read by the server%s", config.HumanBytes(float64(s.PeakBytesInPipe)), s.ackAgeNote())
		s.writeKernelText(row)
		s.writeVerdictText(row)
	}
	if s.Direction.ServerWrites() {
		row("read", "%s (%d bytes), %s/s", config.HumanBytes(float64(s.BytesRead)), s.BytesRead, config.HumanBytes(s.ReadBytesPerSecond))
	}
	s.writeStreamText(row)
	if s.FailedConns > 0 {
		row("failed", "%s%s", s.units().Count(int(s.FailedConns)), s.notConnectedNote())
	}
	if s.Reconnects > 0 {
		row("reconnects", "%d (bytes a broken connection had written but not had acknowledged were written again)", s.Reconnects)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// seconds prints a duration in seconds with sensible precision.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// ackAgeNote says how sure the peak in the pipe is at high speed: it is
// written minus acknowledged, taken as acks arrive, and an ack is as old as
// the time it took to reach this client and be read here. On a busy machine
// that is milliseconds, and at 1.5 GB/s each one adds 1.5 MB. Below
// 100 MB/s the age is lost in the figure, and nothing is said.
func (s Summary) ackAgeNote() string {
	if s.WriteBytesPerSecond < 100e6 {
		return ""
	}
	return fmt.Sprintf(" (at %s/s each millisecond an ack is late adds %s: the figure may run that high)",
		config.HumanBytes(s.WriteBytesPerSecond), config.HumanBytes(s.WriteBytesPerSecond/1000))
}

// notConnectedNote says how many of the failed connections never opened.
func (s Summary) notConnectedNote() string {
	if s.NotConnected == 0 {
		return ""
	}
	if s.NotConnected == s.FailedConns {
		return ", none of which could connect"
	}
	return fmt.Sprintf(", %d of which could not connect", s.NotConnected)
}
