package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/internal/hop"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/metrics"
)

// uploadResult is how one in-process run over loopback ended.
type uploadResult struct {
	client, server flow.Snapshot
	clientErr      error
	serverErr      error
}

// uploadOptions shape runUpload's connection.
type uploadOptions struct {
	proto        flow.Protocol
	total        int64 // bytes the client writes
	payload      int
	read         flow.ReadSettings // the server's slow reader
	sndbuf       int               // client SO_SNDBUF
	rcvbuf       int               // server SO_RCVBUF
	during       func()            // called while the run is in progress
	serverCloses bool              // the server hangs up early instead of reading
}

// runUpload runs one real upload over loopback, the client reporting to
// client, the server to server, like bp-client and bp-server do.
func runUpload(t *testing.T, o uploadOptions, client, server flow.Observer) uploadResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serverDone := make(chan uploadResult, 1)
	serve := func(h *flow.Hello, c flow.Conn) {
		if o.serverCloses {
			buf := make([]byte, 1024)
			c.Read(buf)
			c.Close()
			serverDone <- uploadResult{}
			return
		}
		snap, err := flow.NewSession(c, flow.Plan{Read: o.read, PeerWrites: true}, server).Run(ctx)
		serverDone <- uploadResult{server: snap, serverErr: err}
	}
	hello := flow.Hello{RunID: "metrics-test", Direction: flow.Up, PayloadSize: o.payload, TotalBytes: o.total}
	opts := flow.SocketOptions{SendBuffer: o.sndbuf}
	ln, err := flow.ListenTCP(ctx, "127.0.0.1:0", flow.SocketOptions{ReceiveBuffer: o.rcvbuf})
	if err != nil {
		t.Fatal(err)
	}
	target := flowtest.Serve(t, o.proto, ln, func(_ context.Context, h *flow.Hello, c flow.Conn, err error) {
		if err != nil {
			serverDone <- uploadResult{serverErr: err}
			return
		}
		serve(h, c)
	})
	conn, err := flowtest.Dial(t, ctx, target, hello, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("m"), o.payload)
	sess := flow.NewSession(conn, flow.Plan{Initiator: true, Write: &flow.WritePlan{Payload: payload, TotalBytes: o.total}}, client)
	clientDone := make(chan struct{})
	var res uploadResult
	go func() {
		defer close(clientDone)
		res.client, res.clientErr = sess.Run(ctx)
	}()
	if o.during != nil {
		o.during()
	}
	<-clientDone
	select {
	case s := <-serverDone:
		res.server, res.serverErr = s.server, s.serverErr
	case <-ctx.Done():
		t.Fatal("server session did not end")
	}
	return res
}

// histogram returns a histogram series' sample count and sum.
func histogram(t *testing.T, reg prometheus.Gatherer, name string, proto flow.Protocol) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "protocol" && l.GetValue() == string(proto) {
					return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	t.Fatalf("no %s{protocol=%q}", name, proto)
	return 0, 0
}

// TestEventsToMetrics: a real upload's events arrive in the core metrics of
// both sides, exactly: bytes, acks, write calls, connections; nothing left
// in the pipe; nothing counted for the other protocol.
func TestEventsToMetrics(t *testing.T) {
	for _, proto := range metrics.Protocols {
		t.Run(string(proto), func(t *testing.T) {
			const payload, total = 10000, 3<<20 + 17 // the last write is short
			creg, sreg := metrics.NewRegistry(), metrics.NewRegistry()
			cm, sm := metrics.New(creg, "test"), metrics.New(sreg, "test")
			res := runUpload(t, uploadOptions{proto: proto, total: total, payload: payload}, cm, sm)
			if res.clientErr != nil || res.serverErr != nil {
				t.Fatalf("client: %v; server: %v", res.clientErr, res.serverErr)
			}
			p, other := string(proto), "tcp"
			if proto == flow.TCP {
				other = "websocket"
			}
			writes := uint64((total + payload - 1) / payload)
			checks := []struct {
				name      string
				got, want float64
			}{
				{"client bp_bytes_written_total", testutil.ToFloat64(cm.BytesWritten.WithLabelValues(p)), total},
				{"client bp_bytes_acked_total", testutil.ToFloat64(cm.BytesAcked.WithLabelValues(p)), total},
				{"client bp_bytes_in_pipe", testutil.ToFloat64(cm.BytesInPipe.WithLabelValues(p)), 0},
				{"client bp_bytes_read_total", testutil.ToFloat64(cm.BytesRead.WithLabelValues(p)), 0},
				{"client bp_connections", testutil.ToFloat64(cm.Connections.WithLabelValues(p)), 0},
				{"client bp_connections_opened_total", testutil.ToFloat64(cm.Opened.WithLabelValues(p)), 1},
				{"server bp_bytes_read_total", testutil.ToFloat64(sm.BytesRead.WithLabelValues(p)), total},
				{"server bp_bytes_written_total", testutil.ToFloat64(sm.BytesWritten.WithLabelValues(p)), 0},
				{"server bp_connections", testutil.ToFloat64(sm.Connections.WithLabelValues(p)), 0},
				{"server bp_connections_opened_total", testutil.ToFloat64(sm.Opened.WithLabelValues(p)), 1},
				{"server bp_reads_paused", testutil.ToFloat64(sm.ReadsPaused.WithLabelValues(p)), 0},
				{"client bp_bytes_written_total, other protocol", testutil.ToFloat64(cm.BytesWritten.WithLabelValues(other)), 0},
				{"server bp_bytes_read_total, other protocol", testutil.ToFloat64(sm.BytesRead.WithLabelValues(other)), 0},
				{"client bp_build_info", testutil.ToFloat64(cm.BuildInfo.WithLabelValues("test", runtime.Version())), 1},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			if n, _ := histogram(t, creg, "bp_write_blocked_seconds", proto); n != writes {
				t.Errorf("client bp_write_blocked_seconds_count = %d, want %d write calls", n, writes)
			}
			for _, reg := range []*prometheus.Registry{creg, sreg} {
				if n, err := testutil.GatherAndCount(reg, "bp_connection_errors_total"); err != nil || n != len(metrics.Protocols)*len(flow.ErrorReasons) {
					t.Errorf("bp_connection_errors_total has %d series (err %v), want every protocol and reason from the start", n, err)
				}
			}
			for _, r := range flow.ErrorReasons {
				if v := testutil.ToFloat64(cm.Errors.WithLabelValues(p, r)) + testutil.ToFloat64(sm.Errors.WithLabelValues(p, r)); v != 0 {
					t.Errorf("bp_connection_errors_total{reason=%q} = %v after a clean run", r, v)
				}
			}
		})
	}
}

// TestPauseAndThrottleMetrics: a server reader that pauses and delays shows
// it in its metrics (paused while paused, then the time spent), and the
// client whose writes it held back counts blocked time and a stall.
func TestPauseAndThrottleMetrics(t *testing.T) {
	const pause = 600 * time.Millisecond
	creg, sreg := metrics.NewRegistry(), metrics.NewRegistry()
	cm, sm := metrics.New(creg, "test"), metrics.New(sreg, "test")
	var pausedDuring float64
	res := runUpload(t, uploadOptions{
		proto: flow.TCP, total: 8 << 20, payload: 32 << 10,
		read:   flow.ReadSettings{Size: 16 << 10, Delay: 100 * time.Microsecond, Pause: flow.PauseSchedule{After: 50 * time.Millisecond, For: pause}},
		sndbuf: 32 << 10, rcvbuf: 32 << 10,
		during: func() {
			time.Sleep(50*time.Millisecond + pause/2)
			pausedDuring = testutil.ToFloat64(sm.ReadsPaused.WithLabelValues("tcp"))
		},
	}, cm, sm)
	if res.clientErr != nil || res.serverErr != nil {
		t.Fatalf("client: %v; server: %v", res.clientErr, res.serverErr)
	}
	if pausedDuring != 1 {
		t.Errorf("server bp_reads_paused = %v during the pause, want 1", pausedDuring)
	}
	if v := testutil.ToFloat64(sm.ReadsPaused.WithLabelValues("tcp")); v != 0 {
		t.Errorf("server bp_reads_paused = %v after the run, want 0", v)
	}
	if v := testutil.ToFloat64(sm.PausedSeconds.WithLabelValues("tcp")); v < 0.9*pause.Seconds() || v > pause.Seconds()+0.5 {
		t.Errorf("server bp_read_paused_seconds_total = %.3f, want about %s", v, pause)
	}
	if v := testutil.ToFloat64(sm.ThrottledSecs.WithLabelValues("tcp")); v <= 0 {
		t.Errorf("server bp_read_throttled_seconds_total = %v with a read delay, want > 0", v)
	}
	if v := testutil.ToFloat64(cm.Stalls.WithLabelValues("tcp")); v < 1 {
		t.Errorf("client bp_stalls_total = %v, want >= 1 (the server paused %s)", v, pause)
	}
	if _, sum := histogram(t, creg, "bp_write_blocked_seconds", flow.TCP); sum < 0.5*pause.Seconds() {
		t.Errorf("client bp_write_blocked_seconds_sum = %.3f, want most of the %s pause", sum, pause)
	}
	if v := testutil.ToFloat64(sm.BytesRead.WithLabelValues("tcp")); v != 8<<20 {
		t.Errorf("server bp_bytes_read_total = %v, want %d", v, 8<<20)
	}
}

// TestErrorCounted: a connection the peer breaks is counted once, under the
// reason flow.ErrorReason gives its error, and leaves nothing in the pipe.
func TestErrorCounted(t *testing.T) {
	creg := metrics.NewRegistry()
	cm := metrics.New(creg, "test")
	res := runUpload(t, uploadOptions{proto: flow.TCP, total: 64 << 20, payload: 64 << 10, serverCloses: true}, cm, flow.Nop{})
	if res.clientErr == nil {
		t.Fatal("client run ended without error after the server hung up")
	}
	reason := flow.ErrorReason(res.clientErr)
	var total float64
	for _, r := range flow.ErrorReasons {
		total += testutil.ToFloat64(cm.Errors.WithLabelValues("tcp", r))
	}
	if got := testutil.ToFloat64(cm.Errors.WithLabelValues("tcp", reason)); got != 1 || total != 1 {
		t.Errorf("bp_connection_errors_total{reason=%q} = %v (all reasons %v), want 1; err %v", reason, got, total, res.clientErr)
	}
	if v := testutil.ToFloat64(cm.BytesInPipe.WithLabelValues("tcp")); v != 0 {
		t.Errorf("bp_bytes_in_pipe = %v after a broken connection, want 0", v)
	}
	if v := testutil.ToFloat64(cm.Connections.WithLabelValues("tcp")); v != 0 {
		t.Errorf("bp_connections = %v after a broken connection, want 0", v)
	}
}

// recordingRegisterer remembers every collector registered through it, so
// a test can list the metrics a constructor defines (Describe) even when
// they have no series yet.
type recordingRegisterer struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// binaryRegistry builds a registry with every constructor the binaries use
// (bp-server, bp-client, bp-relay),
// and runs one real connection through it so collectors that export only
// with connections have series.
func binaryRegistry(t *testing.T) *recordingRegisterer {
	t.Helper()
	reg := &recordingRegisterer{Registry: metrics.NewRegistry()}
	m := metrics.New(reg, "test")
	sampler, err := metrics.NewSocketSampler(reg, metrics.SamplerOptions{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterNetstat(reg); err != nil {
		t.Fatal(err)
	}
	metrics.NewRelay(reg, 64<<10, 1<<20)     // bp-relay's own metrics
	metrics.NewClient(reg)                   // bp-client's own metrics
	metrics.NewListener(reg)                 // bp-server's and bp-relay's listeners
	hop.NewH2Metrics(reg)                    // bp-server's HTTP/2 frames and errors
	hop.RegisterStreamBuffers(reg, nil, nil) // bp-server's stream buffers
	// bp-client's verdict and fleet gauges, with a verdict so that every
	// figure is gathered.
	v := metrics.NewVerdict(reg, []string{"blocked", "absorbed", "not_stalled", "unknown"}, "lint", 4)
	absorbed, delay, stopped := int64(1<<20), 0.25, 1.0
	v.Set(metrics.VerdictFigures{Outcome: "blocked", AbsorbedBytes: &absorbed, BlockDelay: &delay, ServerStoppedAt: &stopped})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sampler.Run(ctx) }()
	defer func() { cancel(); <-done }()
	obs := flow.Multi(m, sampler)
	runUpload(t, uploadOptions{proto: flow.TCP, total: 64 << 10, payload: 1 << 10, read: flow.ReadSettings{Delay: time.Millisecond}}, obs, obs)
	// A stream of a multiplexed connection, so that the bp_stream_* series
	// are gathered (and linted) too.
	stream := flowtest.NewStream(0, flow.StreamStats{SendStreamWindow: 0, SendConnWindow: 1 << 16, RecvStreamWindow: 1 << 16, RecvConnWindow: 1 << 16})
	o := sampler.Open(flow.ConnInfo{Protocol: streamProtocol(), Writes: true, Stream: stream})
	sampler.Sample(time.Now())
	o.Closed(nil)
	return reg
}

// TestLint: every family the binaries export passes client_golang's
// promlint (the checks of promtool check metrics).
func TestLint(t *testing.T) {
	reg := binaryRegistry(t)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestDocsInStep: docs/METRICS.md lists exactly the bp_* metrics the
// binaries register, each with its type. Every table row starting with
// "| `bp_" counts, in any table of the page.
func TestDocsInStep(t *testing.T) {
	documented := readDocumentedMetrics(t, "../../docs/METRICS.md")
	reg := binaryRegistry(t)

	registered := map[string]string{} // name -> type ("" when not gathered)
	descName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := descName.FindStringSubmatch(d.String()); m != nil && strings.HasPrefix(m[1], "bp_") {
				registered[m[1]] = ""
			}
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "bp_") {
			registered[mf.GetName()] = strings.ToLower(mf.GetType().String())
		}
	}
	if len(registered) < 10 {
		t.Fatalf("only %d bp_ metrics found in the registry: %v", len(registered), registered)
	}
	for _, name := range sortedKeys(registered) {
		docType, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("%s is registered but not documented in docs/METRICS.md", name)
		case registered[name] != "" && registered[name] != docType:
			t.Errorf("%s is a %s, docs/METRICS.md says %s", name, registered[name], docType)
		}
	}
	for _, name := range sortedKeys(documented) {
		if _, ok := registered[name]; !ok {
			t.Errorf("%s is documented in docs/METRICS.md but not registered", name)
		}
		if ty := documented[name]; ty != "counter" && ty != "gauge" && ty != "histogram" && ty != "summary" {
			t.Errorf("%s: unknown type %q in docs/METRICS.md", name, ty)
		}
	}
}

// readDocumentedMetrics parses the metric tables: | `name` | type | ... |
func readDocumentedMetrics(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "| `bp_") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Errorf("docs/METRICS.md: short table row %q", line)
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := out[name]; dup {
			t.Errorf("docs/METRICS.md documents %s twice", name)
		}
		out[name] = strings.ToLower(strings.TrimSpace(cells[2]))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
