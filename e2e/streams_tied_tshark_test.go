package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
	"github.com/go-backpressure/go-backpressure/pkg/report"
	"github.com/go-backpressure/go-backpressure/pkg/verdict"
)

// TestStreamsTiedTshark: the per-stream figures behind the report's
// streams_tied, checked against a tshark capture of the same h2c run on
// loopback (decoded as HTTP/2): four streams on one connection to
// bp-server, the first paused for 2 s (--slow-streams 1). From the
// capture, each stream's DATA bytes (client to server) over the run's
// duration are its rate, and the time its DATA frames stopped (gaps past
// heldGap, less the pacing's own interval) is how long it was held. The
// report's slow group (one stream) has the rate and held time of the
// stream whose hello (in the capture) did not ask for full speed, its
// fast group the others' mean; and tshark sees what the
// report concludes: directly, the fast streams went on (apart); through
// HAProxy in HTTP mode with h2 on both sides (deploy/haproxy/haproxy-h2.cfg,
// captured on the client's connection to it), their DATA stopped with
// the slow one's (tied).
func TestStreamsTiedTshark(t *testing.T) {
	needTool(t, "tshark", "tshark")
	t.Parallel()
	for _, hop := range []string{"direct", "haproxy"} {
		t.Run(hop, func(t *testing.T) {
			t.Parallel()
			checkTiedTshark(t, hop)
		})
	}
}

// checkTiedTshark is TestStreamsTiedTshark through hop.
func checkTiedTshark(t *testing.T, hop string) {
	const rate = 200
	// Two tries: on a loaded machine the capture can start late (tshark
	// says it captures before it does: the first 5 messages of each
	// stream were once missing) or miss segments; a second incomplete
	// capture fails.
	var sum report.Summary
	var streams []h2StreamData
	for try := 1; ; try++ {
		var incomplete string
		sum, streams, incomplete = tiedTsharkTry(t, hop, rate)
		if incomplete == "" {
			break
		}
		t.Logf("try %d: %s", try, incomplete)
		if try == 2 {
			t.Fatalf("the capture was incomplete twice (%s): its figures are no reference", incomplete)
		}
	}
	l := sum.StreamLayer
	if l == nil || l.StreamGroups == nil || l.StreamsTied == nil {
		t.Fatalf("no slow and fast streams in the report's stream layer: %+v", l)
	}
	g, secs := l.StreamGroups, sum.DurationSeconds
	if len(streams) != 4 {
		t.Fatalf("tshark saw DATA on %d streams, want 4: %+v", len(streams), streams)
	}
	// The slow stream is the one whose hello did not ask for full speed:
	// tied, the streams move alike, and their bytes do not tell.
	slices.SortFunc(streams, func(a, b h2StreamData) int { return int(a.id) - int(b.id) })
	i := slices.IndexFunc(streams, func(s h2StreamData) bool { return s.slow })
	if i < 0 || slices.ContainsFunc(streams[i+1:], func(s h2StreamData) bool { return s.slow }) {
		t.Fatalf("tshark: want one stream whose hello did not ask for full speed: %+v", streams)
	}
	slow, fast := streams[i], slices.Delete(slices.Clone(streams), i, i+1)
	var fastRate, fastHeld float64
	for _, s := range fast {
		fastRate += float64(s.bytes) / secs / float64(len(fast))
		fastHeld += s.held / float64(len(fast))
	}
	slowRate := float64(slow.bytes) / secs
	t.Logf("report (%.2f s): slow %.1f kB/s per stream, blocked %.2f s, stalled %.2f s; fast %.1f kB/s, blocked %.2f s, stalled %.2f s; %s",
		secs, g.Slow.BytesAckedPerSecond/1e3, g.Slow.BlockedShare*secs, g.Slow.StalledShare*secs,
		g.Fast.BytesAckedPerSecond/1e3, g.Fast.BlockedShare*secs, g.Fast.StalledShare*secs, l.StreamsTied.Conclusion)
	t.Logf("tshark: slow stream %d: %.1f kB/s, held %.2f s; fast streams %v: %.1f kB/s, held %.2f s",
		slow.id, slowRate/1e3, slow.held, fast, fastRate/1e3, fastHeld)
	// DATA carries each 16 KiB message's 5-byte header, the hello line and
	// the fin beside the payload: 0.03% more than the payload (runs saw
	// 0.01-0.04%).
	for _, c := range []struct {
		group          string
		report, tshark float64
	}{{"slow", g.Slow.BytesAckedPerSecond, slowRate}, {"fast", g.Fast.BytesAckedPerSecond, fastRate}} {
		if math.Abs(c.report-c.tshark) > 0.005*c.tshark {
			t.Errorf("%s streams: the report says %.1f kB/s per stream, tshark %.1f kB/s: more than 0.5%% apart", c.group, c.report/1e3, c.tshark/1e3)
		}
	}
	// The time a stream stood still is its writes' time in stalls (write
	// calls blocked heldGap or longer: the client's --stall-threshold):
	// tshark sees it as gaps in its DATA. Not its whole blocked time,
	// which holds every write call's own time too: under -race on a busy
	// machine, 0.3 s of a fast stream's 500 writes that never stopped.
	for _, c := range []struct {
		group          string
		report, tshark float64
	}{{"slow", g.Slow.StalledShare * secs, slow.held}, {"fast", g.Fast.StalledShare * secs, fastHeld}} {
		if tol := math.Max(0.25, 0.15*c.tshark); math.Abs(c.report-c.tshark) > tol {
			t.Errorf("%s streams: the report says writes stalled %.2f s per stream, tshark saw their DATA stop %.2f s: more than %.2f s apart", c.group, c.report, c.tshark, tol)
		}
	}
	switch {
	case hop == "direct" && (l.StreamsTied.Conclusion != verdict.StreamsApart || slow.held < 1 || fastHeld > 0.25):
		t.Errorf("the report says %s; tshark: slow stream held %.2f s, fast ones %.2f s: want apart, the slow one held, the fast ones not", l.StreamsTied.Conclusion, slow.held, fastHeld)
	case hop == "haproxy" && (l.StreamsTied.Conclusion != verdict.StreamsTiedOn || slow.held < 1 || fastHeld < 0.5):
		t.Errorf("the report says %s; tshark: slow stream held %.2f s, fast ones %.2f s: want tied, all of them held", l.StreamsTied.Conclusion, slow.held, fastHeld)
	}
}

// tiedTsharkTry runs the client against a fresh bp-server under a tshark
// capture of its connection, and returns the report, the capture's
// streams, and what makes the capture incomplete ("" if nothing).
func tiedTsharkTry(t *testing.T, hop string, rate int) (report.Summary, []h2StreamData, string) {
	t.Helper()
	srv := startServer(t, "--sample-interval", "0", "--pause-after", "300ms", "--pause-for", "2s")
	addr := srv.HTTPAddr
	if hop == "haproxy" {
		addr = startH2HAProxy(t, srv.HTTPAddr)
	}
	_, port, _ := net.SplitHostPort(addr)
	file := filepath.Join(t.TempDir(), "h2c.pcapng")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stop, err := runCapture(ctx, "tshark", "-i", "lo", "-B", "64", "-f", "tcp port "+port, "-w", file)
	if err != nil {
		t.Fatalf("tshark on lo: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // tshark's "Capturing on" comes before it does
	sum, code, stderr := runClient(t, "--target", "h2c://"+addr+"/h2", "--duration", "2500ms",
		"--streams", "4", "--slow-streams", "1", "--payload-size", "16KiB", "--rate", strconv.Itoa(rate),
		"--stall-threshold", heldGap.String())
	stop() // after captureFlush: the last frames reach the file
	if code != 0 || !sum.Completed {
		t.Fatalf("client exit %d, completed %v\nstderr:\n%s", code, sum.Completed, lastLines(stderr, 20))
	}
	count := func(filter string) int {
		out, err := exec.Command("tshark", "-r", file, "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
		if err != nil {
			t.Fatalf("tshark -r: %v", err)
		}
		return len(strings.Fields(string(out)))
	}
	var incomplete []string
	if count("tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == "+port) == 0 {
		incomplete = append(incomplete, "the capture began after the client connected")
	}
	if n := count("tcp.analysis.lost_segment"); n > 0 {
		incomplete = append(incomplete, fmt.Sprintf("the capture missed %d segments", n))
	}
	return sum, h2DataByStream(t, file, port, 1.0/float64(rate)), strings.Join(incomplete, "; ")
}

// h2StreamData is one HTTP/2 stream's DATA as tshark saw it.
type h2StreamData struct {
	id    uint64
	bytes int64
	held  float64 // seconds its DATA stopped: gaps past heldGap, less the pacing's interval
	first int     // the packet of its first DATA frame, where its hello is
	slow  bool    // its hello did not ask for full speed (--slow-streams)
}

// heldGap is the gap between a stream's DATA frames from which it counts
// as held: ten times the pacing's interval at 200 writes/s, where a
// loaded machine's jitter stays below.
const heldGap = 50 * time.Millisecond

// h2DataByStream decodes the capture's connection on port as HTTP/2 and
// returns each stream's DATA frames towards port: their payload bytes,
// and the time they stopped (interval: the writer's pacing, each gap's
// own share).
func h2DataByStream(t *testing.T, file, port string, interval float64) []h2StreamData {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-d", "tcp.port=="+port+",http2", "-Y", "tcp.dstport=="+port+" && http2.type == 0",
		"-T", "fields", "-e", "frame.time_relative", "-e", "http2.streamid", "-e", "http2.length", "-e", "http2.type", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	type acc struct {
		h2StreamData
		last float64
	}
	byID := map[uint64]*acc{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			continue
		}
		at, _ := strconv.ParseFloat(f[0], 64)
		packet, _ := strconv.Atoi(f[4])
		ids, lens, types := strings.Split(f[1], ","), strings.Split(f[2], ","), strings.Split(f[3], ",")
		for i := range min(len(ids), len(lens), len(types)) {
			if types[i] != "0" { // DATA
				continue
			}
			id, _ := strconv.ParseUint(ids[i], 10, 32)
			n, _ := strconv.ParseInt(lens[i], 10, 64)
			s := byID[id]
			if s == nil {
				s = &acc{h2StreamData: h2StreamData{id: id, first: packet}, last: at}
				byID[id] = s
			}
			if gap := at - s.last; gap >= heldGap.Seconds() {
				s.held += gap - interval
			}
			s.bytes += n
			s.last = at
		}
	}
	var streams []h2StreamData
	for _, s := range byID {
		s.slow = h2HelloSlow(t, file, port, s.first, s.id)
		streams = append(streams, s.h2StreamData)
	}
	return streams
}

// h2HelloSlow reads the hello at the start of stream id's first DATA
// frame, in packet: true when it does not ask for full speed.
func h2HelloSlow(t *testing.T, file, port string, packet int, id uint64) bool {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-d", "tcp.port=="+port+",http2", "-Y", "frame.number == "+strconv.Itoa(packet),
		"-T", "fields", "-e", "http2.streamid", "-e", "http2.type", "-e", "http2.data.data").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\t")
	if len(f) != 3 {
		t.Fatalf("tshark: packet %d: %q", packet, out)
	}
	ids, types, data := strings.Split(f[0], ","), strings.Split(f[1], ","), strings.Split(f[2], ",")
	for i, d := 0, 0; i < min(len(ids), len(types)); i++ {
		if types[i] != "0" {
			continue
		}
		if ids[i] == strconv.FormatUint(id, 10) && d < len(data) {
			b, _ := hex.DecodeString(data[d])
			line, _, _ := strings.Cut(string(b), "\n")
			if !strings.HasPrefix(line, flow.TCPHelloPrefix) {
				t.Fatalf("tshark: stream %d's first DATA frame begins %q, not a hello", id, line[:min(len(line), 40)])
			}
			return !strings.Contains(line, `"full_speed":true`)
		}
		d++ // data holds one entry per DATA frame
	}
	t.Fatalf("tshark: packet %d has no DATA frame of stream %d: %q", packet, id, out)
	return false
}
