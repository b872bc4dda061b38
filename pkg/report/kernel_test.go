package report_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// fakeKernel is a KernelSource that returns what the test sets.
type fakeKernel struct {
	totals sockstat.Totals
	resets int
	// then, if set, replaces totals after the first read (the baseline).
	then *sockstat.Totals
}

func (k *fakeKernel) Totals() sockstat.Totals {
	t := k.totals
	if k.then != nil {
		k.totals = *k.then
	}
	return t
}

func (k *fakeKernel) ResetPeak() { k.resets++ }

// TestReportKernelView: the kernel's view appears in the summary, text and
// JSON, as shares of the connections' time; what the kernel does not
// provide is left out rather than shown as zero.
func TestReportKernelView(t *testing.T) {
	run := report.Run{RunID: "k", Target: "tcp://x:1", Direction: flow.Up, Connections: 2, PayloadSize: 1024, StallThreshold: 100 * time.Millisecond}
	for _, tc := range []struct {
		name       string
		kernel     *sockstat.Totals // nil: no sampler
		wantJSON   map[string]float64
		absentJSON []string
		wantText   []string
		absentText []string
	}{
		{
			// Two connections for 10 s: 20 connection-seconds.
			name: "full kernel",
			kernel: &sockstat.Totals{
				Has:               sockstat.FieldPeerWindow | sockstat.FieldLimited | sockstat.FieldSendQueue,
				Counters:          sockstat.Counters{PeerWindowZero: 4 * time.Second, RwndLimited: 5 * time.Second, SndbufLimited: time.Second, Busy: 18 * time.Second},
				PeakConnSendQueue: 190000,
			},
			wantJSON: map[string]float64{
				"peer_window_zero_seconds": 4, "peer_window_zero_share": 0.2,
				"rwnd_limited_seconds": 5, "rwnd_limited_share": 0.25, "sndbuf_limited_seconds": 1,
				"peak_send_queue_bytes": 190000,
			},
			wantText: []string{"peer window      zero in all 4s over 2 connections, 2s per connection, 20% of the run each: the kernel of the peer", "rwnd-limited     in all 5s over 2 connections, 2.5s per connection, 25% of the run each, held back by the peer's", "send queue       peak 190.0 kB"},
			// Behind a hop the kernel is not the server's: never said so.
			absentText: []string{"server's kernel", "server's receive window"},
		},
		{
			// A 5.0 kernel: no peer window; the rest is there.
			name:       "no peer window",
			kernel:     &sockstat.Totals{Has: sockstat.FieldLimited | sockstat.FieldSendQueue, Counters: sockstat.Counters{RwndLimited: 5 * time.Second}, PeakConnSendQueue: 1},
			wantJSON:   map[string]float64{"rwnd_limited_seconds": 5},
			absentJSON: []string{"peer_window_zero_seconds", "peer_window_zero_share"},
			absentText: []string{"peer window"},
		},
		{
			name:       "sampling off",
			absentJSON: []string{"peer_window_zero_seconds", "rwnd_limited_seconds", "rwnd_limited_share", "sndbuf_limited_seconds", "peak_send_queue_bytes"},
			absentText: []string{"peer window", "rwnd-limited", "send queue"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := report.NewRecorder()
			if tc.kernel != nil {
				// A source whose times start at zero when the run starts.
				rec.SetKernel(&fakeKernel{totals: sockstat.Totals{Has: tc.kernel.Has}, then: tc.kernel})
			}
			sum := rec.Summarize(run, 10*time.Second, nil)
			var js bytes.Buffer
			if err := sum.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			if err := json.Unmarshal(js.Bytes(), &fields); err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.wantJSON {
				if got, ok := fields[k].(float64); !ok || got != want {
					t.Errorf("JSON %s = %v, want %v", k, fields[k], want)
				}
			}
			for _, k := range tc.absentJSON {
				if v, ok := fields[k]; ok {
					t.Errorf("JSON has %s = %v, want it absent", k, v)
				}
			}
			var text bytes.Buffer
			if err := sum.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.wantText {
				if !strings.Contains(text.String(), s) {
					t.Errorf("text lacks %q:\n%s", s, text.String())
				}
			}
			for _, s := range tc.absentText {
				if strings.Contains(text.String(), s) {
					t.Errorf("text has %q:\n%s", s, text.String())
				}
			}
		})
	}
}

// TestReportKernelBaseline: a recorder counts only the kernel time that
// grew after SetKernel, so each run of a process reports its own.
func TestReportKernelBaseline(t *testing.T) {
	has := sockstat.FieldPeerWindow | sockstat.FieldLimited
	k := &fakeKernel{
		totals: sockstat.Totals{Has: has, Counters: sockstat.Counters{PeerWindowZero: 7 * time.Second, RwndLimited: 9 * time.Second}},
		then:   &sockstat.Totals{Has: has, Counters: sockstat.Counters{PeerWindowZero: 9 * time.Second, RwndLimited: 12 * time.Second}},
	}
	rec := report.NewRecorder()
	rec.SetKernel(k)
	if k.resets != 1 {
		t.Errorf("SetKernel reset the source's peak %d times, want once", k.resets)
	}
	sum := rec.Summarize(report.Run{Direction: flow.Up, Connections: 1}, 10*time.Second, nil)
	if sum.PeerWindowZeroSeconds == nil || *sum.PeerWindowZeroSeconds != 2 || sum.RwndLimitedSeconds == nil || *sum.RwndLimitedSeconds != 3 {
		t.Errorf("peer window zero %v, rwnd-limited %v; want 2 and 3 (grown since SetKernel)", sum.PeerWindowZeroSeconds, sum.RwndLimitedSeconds)
	}
}
