// Command connmem measures bp-server's memory per slow connection, for TCP
// and WebSocket: it starts one bp-server, opens N connections with one
// bp-client that writes one 1 KiB message a second on each, and, once all
// are open, reads the server's /metrics a few times: resident memory, Go
// heap in use, goroutine stacks in use, goroutines. It prints each figure's
// growth over the idle server divided by N (medians of the samples).
//
//	go run ./scripts/connmem                        # 2,000 connections, tcp and websocket
//	go run ./scripts/connmem -connections 10000 -protocols tcp
//
// Only processes it started are stopped, by pid. See docs/BENCHMARKS.md.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	conns := flag.Int("connections", 2000, "slow connections to open")
	protocols := flag.String("protocols", "tcp,websocket", "comma-separated: tcp, websocket")
	bin := flag.String("bin", "", "directory with bp-server and bp-client (default: build them)")
	samples := flag.Int("samples", 6, "samples taken once every connection is open, 1 s apart")
	flag.Parse()
	if err := run(*conns, strings.Split(*protocols, ","), *bin, *samples); err != nil {
		fmt.Fprintln(os.Stderr, "connmem:", err)
		os.Exit(1)
	}
}

// figures are the server metrics compared, by name.
var figures = []struct{ name, metric string }{
	{"RSS", "process_resident_memory_bytes"},
	{"heap in use", "go_memstats_heap_inuse_bytes"},
	{"stacks in use", "go_memstats_stack_inuse_bytes"},
	{"goroutines", "go_goroutines"},
}

func run(conns int, protocols []string, bin string, samples int) error {
	dir, err := os.MkdirTemp("", "connmem")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = dir
		fmt.Fprintln(os.Stderr, "connmem: building bp-server, bp-client")
		b := exec.Command("go", "build", "-o", bin, "./cmd/bp-server", "./cmd/bp-client")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	fmt.Printf("%d slow connections (--rate 1 --payload-size 1KiB), server growth per connection, medians of %d samples\n\n", conns, samples)
	fmt.Printf("%-10s %12s %14s %16s %12s\n", "protocol", "RSS KiB", "heap KiB", "stacks KiB", "goroutines")
	for _, proto := range protocols {
		res, err := measure(dir, bin, proto, conns, samples)
		if err != nil {
			return fmt.Errorf("%s: %w", proto, err)
		}
		fmt.Printf("%-10s %12.1f %14.1f %16.1f %12.2f\n", proto, res[0]/1024, res[1]/1024, res[2]/1024, res[3])
	}
	return nil
}

func measure(dir, bin, proto string, conns, samples int) ([]float64, error) {
	httpAddr, tcpAddr := freeAddr(), freeAddr()
	srv, err := start(dir, "bp-server-"+proto, filepath.Join(bin, "bp-server"), "--http-addr", httpAddr, "--tcp-addr", tcpAddr,
		"--log-interval", "0", "--max-connections", strconv.Itoa(conns+100))
	if err != nil {
		return nil, err
	}
	defer stop(srv)
	metrics := "http://" + httpAddr + "/metrics"
	var base map[string]float64
	for i := 0; ; i++ {
		if base, err = scrape(metrics); err == nil {
			break
		}
		if i == 100 {
			return nil, fmt.Errorf("server not up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	target := "tcp://" + tcpAddr
	if proto == "websocket" {
		target = "ws://" + httpAddr + "/ws"
	}
	cli, err := start(dir, "bp-client-"+proto, filepath.Join(bin, "bp-client"), "--target", target,
		"--connections", strconv.Itoa(conns), "--rate", "1", "--payload-size", "1KiB", "--duration", "10m",
		"--metrics-addr", "", "--sample-interval", "0", "--progress", "off", "--output", "json")
	if err != nil {
		return nil, err
	}
	defer stop(cli)
	open := `bp_connections{protocol="` + proto + `"}`
	deadline := time.Now().Add(3 * time.Minute)
	for {
		m, err := scrape(metrics)
		if err == nil && int(m[open]) >= conns {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %v of %d connections open after 3 minutes", m[open], conns)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // every connection has read and acked a few messages
	per := make([][]float64, len(figures))
	for range samples {
		m, err := scrape(metrics)
		if err != nil {
			return nil, err
		}
		if int(m[open]) < conns {
			return nil, fmt.Errorf("connections dropped to %v", m[open])
		}
		for i, f := range figures {
			per[i] = append(per[i], (m[f.metric]-base[f.metric])/float64(conns))
		}
		time.Sleep(time.Second)
	}
	out := make([]float64, len(figures))
	for i := range per {
		slices.Sort(per[i])
		out[i] = per[i][len(per[i])/2]
	}
	return out, nil
}

// scrape reads the unlabelled metrics by name and the labelled ones by
// name{labels} as written.
func scrape(url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func start(dir, name string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// stop ends a process this program started, by its pid.
func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
