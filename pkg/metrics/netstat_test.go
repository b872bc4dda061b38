package metrics

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-backpressure/go-backpressure/pkg/sockstat"
)

// fixtureNetstat returns a reader of one of pkg/sockstat's netstat fixtures.
func fixtureNetstat(t *testing.T, name string) func() (sockstat.ZeroWindowCounters, error) {
	t.Helper()
	return func() (sockstat.ZeroWindowCounters, error) {
		f, err := os.Open("../sockstat/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return sockstat.ParseNetstat(f)
	}
}

func TestNetstatCollector(t *testing.T) {
	for _, tc := range []struct {
		name string
		read func() (sockstat.ZeroWindowCounters, error)
		want string // exposition of every bp_host_ series, "" for none
	}{
		{
			// A kernel without TCPWantZeroWindowAdv: that counter is left
			// out, not exported as 0; the others keep their full values.
			name: "no want counter",
			read: fixtureNetstat(t, "netstat-no-want.txt"),
			want: `
# HELP bp_host_tcp_from_zero_window_adv_total Times a receive window this host advertised reopened from zero, over all its TCP sockets (TcpExt TCPFromZeroWindowAdv).
# TYPE bp_host_tcp_from_zero_window_adv_total counter
bp_host_tcp_from_zero_window_adv_total 40
# HELP bp_host_tcp_to_zero_window_adv_total Times a receive window this host advertised went from open to zero, over all its TCP sockets (TcpExt TCPToZeroWindowAdv).
# TYPE bp_host_tcp_to_zero_window_adv_total counter
bp_host_tcp_to_zero_window_adv_total 41
# HELP bp_host_tcp_zero_window_drop_total Segments this host dropped because they arrived while its window was zero (TcpExt TCPZeroWindowDrop).
# TYPE bp_host_tcp_zero_window_drop_total counter
bp_host_tcp_zero_window_drop_total 5e+09
`,
		},
		{
			// An unreadable file (or another system) exports nothing
			// rather than failing the scrape.
			name: "read error",
			read: func() (sockstat.ZeroWindowCounters, error) {
				return sockstat.ZeroWindowCounters{}, errors.New("no file")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(NetstatCollector{read: tc.read})
			names := []string{"bp_host_tcp_to_zero_window_adv_total", "bp_host_tcp_from_zero_window_adv_total",
				"bp_host_tcp_want_zero_window_adv_total", "bp_host_tcp_zero_window_drop_total"}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tc.want), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestNetstatCollectorAllCounters: a current kernel's file has all four.
func TestNetstatCollectorAllCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NetstatCollector{read: fixtureNetstat(t, "netstat-linux-6.18.txt")})
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 4 {
		t.Errorf("got %d series (err %v), want 4", n, err)
	}
}
