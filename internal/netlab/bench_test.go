package netlab

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDelayLine measures the delay line on wan-haproxy's first link,
// 1 Gbit/s shaping and a 20 ms round trip: iperf3 between two hosts for
// 8 s per iteration (the first 2 s, slow start, left out of the rate),
// the rate it reached, the CPU this process (the delay line is the only
// thing it runs) spent per second of wall time, how late the line wrote
// packets on average, and the round trip the sender's kernel measured
// (iperf3's TCP_INFO figures).
//
// "tso" passes 64 KiB TCP segments through (the lab's lines without
// loss); "per-packet" takes 1500-byte packets (the lines with loss, and
// every line before). The 4-flows cases run four flows at once (iperf3
// -P 4), so that one flow's back-off after a loss at tbf does not leave
// the link idle: the rate the line passes, not one cubic flow's.
// "tso-900M" sends at 900 Mbit/s (the kernel's pacing, iperf3 --fq-rate),
// below the link's rate, so that the round trip is the line's and the
// link's, without tbf's queue.
//
// make bench runs it: go test -run - -bench DelayLine -benchtime 1x ./internal/netlab/
func BenchmarkDelayLine(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3")
	}
	for _, c := range []struct {
		name      string
		perPacket bool
		flags     []string
	}{{"tso", false, nil}, {"tso-4-flows", false, []string{"-P", "4"}}, {"tso-900M", false, []string{"--fq-rate", "900M"}},
		{"per-packet", true, nil}, {"per-packet-4-flows", true, []string{"-P", "4"}}} {
		b.Run(c.name, func(b *testing.B) {
			perPacket = c.perPacket
			defer func() { perPacket = false }()
			benchLine(b, c.flags)
		})
	}
}

// iperfResult is what the benchmark reads of iperf3 -J.
type iperfResult struct {
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Seconds       float64 `json:"seconds"`
		} `json:"sum_received"`
		Streams []struct {
			Sender struct {
				MinRTT  float64 `json:"min_rtt"`  // µs
				MeanRTT float64 `json:"mean_rtt"` // µs
			} `json:"sender"`
		} `json:"streams"`
	} `json:"end"`
}

func benchLine(b *testing.B, flags []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := Create(ctx, Spec{Hosts: []string{"client", "server"},
		Links: []Link{{A: "client", B: "server", Rate: 1_000_000_000, RTT: 20 * time.Millisecond}}})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", n.NS("server"), "iperf3", "-s", "-B", n.Addr("server", "client"))
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	args := []string{"netns", "exec", n.NS("client"), "iperf3", "-c", n.Addr("server", "client"), "-t", "8", "-O", "2", "-J"}
	args = append(args, flags...)
	for b.Loop() {
		n.lines[0].LateNanos.Store(0)
		n.lines[0].Packets.Store(0)
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		start := time.Now()
		out, err := exec.CommandContext(ctx, "ip", args...).Output()
		wall := time.Since(start)
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		if err != nil {
			b.Fatalf("iperf3: %v", err)
		}
		var res iperfResult
		if err := json.Unmarshal(out, &res); err != nil || len(res.End.Streams) == 0 {
			b.Fatalf("iperf3 -J: %v", err)
		}
		line := n.lines[0]
		lateMs := float64(line.LateNanos.Load()) / 1e6 / float64(max(line.Packets.Load(), 1))
		drops := line.Dropped.Swap(0)
		cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
		b.ReportMetric(res.End.SumReceived.BitsPerSecond/1e6, "Mbit/s")
		b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
		b.ReportMetric(res.End.Streams[0].Sender.MinRTT/1000, "min_rtt_ms")
		b.ReportMetric(res.End.Streams[0].Sender.MeanRTT/1000, "mean_rtt_ms")
		b.ReportMetric(lateMs, "late_ms")
		b.ReportMetric(float64(drops), "line_drops")
	}
}
