package metrics_test

import (
	"net"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-backpressure/go-backpressure/pkg/metrics"
	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// hostRegistry is bp-sockets' registry after one pass over a loopback
// connection to a port that is both the hop's downstream and upstream
// port, so both sides have a socket and every metric a value.
func hostRegistry(t *testing.T) (*prometheus.Registry, *sockstat.HostSampler) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("sock_diag is Linux's")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := c.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	p := uint16(ln.Addr().(*net.TCPAddr).Port)
	h := sockstat.NewHostSampler(sockstat.HostSamplerOptions{Interval: time.Millisecond,
		Ports: sockstat.HopPorts{Downstream: []uint16{p}, Upstream: []uint16{p}}})
	if err := h.Sample(time.Now()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewHostSocketCollector(h))
	return reg, h
}

// TestHostSocketsValues: the collector exports the sampler's figures per
// side; the unread bytes sit in the accepted (downstream) socket.
func TestHostSocketsValues(t *testing.T) {
	reg, _ := hostRegistry(t)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[f.GetName()+"/"+m.GetLabel()[0].GetValue()] = v
		}
	}
	for key, want := range map[string]float64{
		"bp_socket_sampled_connections/downstream": 1, "bp_socket_sampled_connections/upstream": 1,
		"bp_socket_recv_queue_bytes/downstream": 6, "bp_socket_recv_queue_bytes/upstream": 0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

// TestHostSocketsFailedPass: before a pass (or after a failed one) no
// bp_socket_* metric is exported, rather than zeros.
func TestHostSocketsFailedPass(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewHostSocketCollector(sockstat.NewHostSampler(sockstat.HostSamplerOptions{Interval: time.Second})))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 0 {
		t.Errorf("exported %d families before any pass", len(fams))
	}
}

// TestHostSocketsHelpShared: bp-sockets' metrics are the binaries' own
// socket metrics, same names and help, with side for protocol.
func TestHostSocketsHelpShared(t *testing.T) {
	help := func(c prometheus.Collector) map[string]string {
		out := map[string]string{}
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		re := regexp.MustCompile(`fqName: "([^"]+)", help: "([^"]+)", unit: "", constLabels: \{\}, variableLabels: \{(\w+)\}`)
		for d := range ch {
			if m := re.FindStringSubmatch(d.String()); m != nil {
				out[m[1]] = m[2] + " / " + m[3]
			}
		}
		return out
	}
	own := help(metrics.NewSocketCollector(sockstat.NewSampler(sockstat.SamplerOptions{})))
	host := help(metrics.NewHostSocketCollector(sockstat.NewHostSampler(sockstat.HostSamplerOptions{})))
	if len(own) < 10 || len(own) != len(host) {
		t.Fatalf("%d own socket metrics, %d host ones", len(own), len(host))
	}
	for name, h := range own {
		if want := strings.Replace(h, " / protocol", " / side", 1); host[name] != want {
			t.Errorf("%s: host %q, own %q", name, host[name], h)
		}
	}
}

// TestHostSocketsDocumented keeps the "bp-sockets" table of
// docs/METRICS.md and bp-sockets' registry in step: same names, types and
// labels.
func TestHostSocketsDocumented(t *testing.T) {
	section := metricsDocSection(t, "bp-sockets")
	row := regexp.MustCompile("(?m)^\\| \\[`([a-z_]+)`\\]\\([^)]*\\) \\| (counter|gauge) \\| ([a-z_, ]*) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented[m[1]] = m[2] + " " + m[3]
	}
	reg, _ := hostRegistry(t)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]string{}
	for _, f := range fams {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		registered[f.GetName()] = strings.ToLower(f.GetType().String()) + " " + strings.Join(labels, ", ")
	}
	if len(registered) < 10 {
		t.Fatalf("only %d families gathered: %v", len(registered), registered)
	}
	for name, want := range registered {
		if got, ok := documented[name]; !ok {
			t.Errorf("%s (%s) is exported by bp-sockets but not in the bp-sockets table of docs/METRICS.md", name, want)
		} else if got != want {
			t.Errorf("%s: documented as %q, exported as %q", name, got, want)
		}
	}
	for name := range documented {
		if _, ok := registered[name]; !ok {
			t.Errorf("%s is in the bp-sockets table of docs/METRICS.md but not exported", name)
		}
	}
}
