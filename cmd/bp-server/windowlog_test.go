package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// TestWindowLogsBounded: a window that flaps is logged at most once per
// windowLogInterval, with the suppressed closes counted on the next line,
// and each logged close has its reopen logged; peer-window events and
// unknown connections are ignored.
func TestWindowLogsBounded(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	a, b := net.Pipe() // only an identity for the connection
	defer a.Close()
	defer b.Close()
	var w windowLogs
	w.add(a, log)
	t0 := time.Now()
	ev := func(at time.Duration, closed bool) sockstat.WindowEvent {
		return sockstat.WindowEvent{Conn: a, Protocol: flow.TCP, Window: sockstat.OwnWindow, Closed: closed, At: t0.Add(at)}
	}
	w.event(ev(0, true))                     // logged
	w.event(ev(200*time.Millisecond, false)) // its reopen: logged
	for i := range 10 {                      // flapping within the interval: suppressed
		at := time.Second + time.Duration(i)*100*time.Millisecond
		w.event(ev(at, true))
		w.event(ev(at+50*time.Millisecond, false))
	}
	w.event(sockstat.WindowEvent{Conn: a, Window: sockstat.PeerWindow, Closed: true, At: t0.Add(3 * time.Second)})
	w.event(sockstat.WindowEvent{Conn: b, Window: sockstat.OwnWindow, Closed: true, At: t0.Add(3 * time.Second)})
	w.event(ev(6*time.Second, true)) // past the interval: logged with the count
	w.event(ev(7*time.Second, false))
	if closes := w.remove(a); closes != 12 {
		t.Errorf("remove: %d closes, want 12", closes)
	}
	w.event(ev(20*time.Second, true)) // after remove: ignored

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	want := []struct {
		msg        string
		suppressed float64
		closedFor  string
	}{
		{"receive window closed", 0, ""},
		{"receive window reopened", 0, "200ms"},
		{"receive window closed", 10, ""},
		{"receive window reopened", 0, "1s"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		l := lines[i]
		got, _ := l["suppressed_closes"].(float64)
		closedFor, _ := l["closed_for"].(string)
		if l["msg"] != w.msg || got != w.suppressed || closedFor != w.closedFor {
			t.Errorf("line %d: %v; want %q, suppressed_closes %v, closed_for %q", i, l, w.msg, w.suppressed, w.closedFor)
		}
	}
	if d, _ := lines[2]["suppressed_closed_for"].(string); d != "500ms" {
		t.Errorf("suppressed_closed_for = %q, want 500ms (10 closes of 50ms)", d)
	}
}
