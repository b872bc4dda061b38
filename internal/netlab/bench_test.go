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

// BenchmarkDelayLine measures the delay line at 1 Gbit/s shaping and a
// 10 ms round trip: iperf3 between two hosts for 5 s per iteration, the
// rate it reached, and the CPU this process (the delay line is the only
// thing it runs) spent per second of it. go test -run - -bench DelayLine
// -benchtime 1x ./internal/netlab/
func BenchmarkDelayLine(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := Create(ctx, Spec{Hosts: []string{"client", "server"},
		Links: []Link{{A: "client", B: "server", Rate: 1_000_000_000, RTT: 10 * time.Millisecond}}})
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
	for b.Loop() {
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", n.NS("client"), "iperf3", "-c", n.Addr("server", "client"),
			"-t", "5", "-J").Output()
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		if err != nil {
			b.Fatalf("iperf3: %v", err)
		}
		var res struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
					Seconds       float64 `json:"seconds"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			b.Fatal(err)
		}
		cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
		b.ReportMetric(res.End.SumReceived.BitsPerSecond/1e6, "Mbit/s")
		b.ReportMetric(cpu.Seconds()/res.End.SumReceived.Seconds, "cores")
	}
}
