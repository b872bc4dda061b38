package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// goodRun is what the soak reads of a bp-client report.
type goodRun struct {
	Completed    bool   `json:"completed"`
	Error        string `json:"error"`
	BytesWritten int64  `json:"bytes_written"`
	BytesAcked   int64  `json:"bytes_acked"`
	BytesRead    int64  `json:"bytes_read"`
}

// target is one path the good peers take.
type target struct {
	name, url, direction string
}

// startPeers starts the good and the hostile peers; they stop when ctx
// ends (a good run under way finishes first).
func startPeers(ctx context.Context, wg *sync.WaitGroup, o options, res *Result, srv, relay *hop) {
	targets := []target{
		{"tcp up", "tcp://" + srv.tcpAddr, "up"},
		{"websocket up", "ws://" + srv.httpAddr + "/ws", "up"},
		{"relay tcp up", "tcp://" + relay.tcpAddr, "up"},
		{"relay websocket up", "ws://" + relay.httpAddr + "/ws", "up"},
		{"tcp down", "tcp://" + srv.tcpAddr, "down"},
		{"relay websocket down", "ws://" + relay.httpAddr + "/ws", "down"},
	}
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ctx.Err() == nil; n += 3 {
				res.goodRun(targets[n%len(targets)].name, runGood(o, targets[n%len(targets)]))
			}
		}()
	}
	hops := []*hop{srv, relay}
	loop := func(kind string, every time.Duration, hold int, f func(ctx context.Context, h *hop) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hostileLoop(ctx, res.hostileCounter(kind), hops, every, hold, f)
		}()
	}
	loop("garbage", 50*time.Millisecond, 0, garbage)
	loop("bad hello", 100*time.Millisecond, 0, badHello)
	loop("slow headers", 100*time.Millisecond, 40, slowHeaders)
	loop("idle keep-alive", 100*time.Millisecond, 40, idleKeepAlive)
	loop("huge frame", 500*time.Millisecond, 0, hugeFrame)
	loop("connect and vanish", 20*time.Millisecond, 0, vanish)
	loop("never-read download", 500*time.Millisecond, 10, neverRead)
}

// runGood runs one bp-client to its end (the soak's end does not cut it)
// and returns "" when its bytes were conserved, else why not.
func runGood(o options, t target) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(o.Bin, "bp-client"), "--target", t.url, "--direction", t.direction,
		"--duration", "3s", "--rate", "100", "--payload-size", "16KiB", "--output", "json", "--progress", "off",
		"--metrics-addr", "", "--log-format", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var r goodRun
	if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
		return fmt.Sprintf("no report (%v, %v): %s", err, jerr, lastLines(stderr.String(), 3))
	}
	switch {
	case err != nil || !r.Completed:
		return fmt.Sprintf("exit %v, completed %v, %s: %s", err, r.Completed, r.Error, lastLines(stderr.String(), 3))
	case t.direction == "up" && (r.BytesWritten == 0 || r.BytesWritten != r.BytesAcked):
		return fmt.Sprintf("wrote %d bytes, the server acknowledged %d", r.BytesWritten, r.BytesAcked)
	case t.direction == "down" && r.BytesRead == 0:
		return "read no bytes"
	}
	return ""
}

// hostileLoop calls f every interval, alternating between the hops; with
// hold > 0 each call runs in its own goroutine, at most hold at once (the
// peers that hold connections open).
func hostileLoop(ctx context.Context, count *atomic.Int64, hops []*hop, every time.Duration, hold int, f func(context.Context, *hop) error) {
	var held sync.WaitGroup
	defer held.Wait()
	slots := make(chan struct{}, max(hold, 1))
	for i := 0; ctx.Err() == nil; i++ {
		h := hops[i%len(hops)]
		count.Add(1)
		if hold == 0 {
			f(ctx, h)
		} else {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			held.Add(1)
			go func() { defer held.Done(); defer func() { <-slots }(); f(ctx, h) }()
		}
		select {
		case <-time.After(every):
		case <-ctx.Done():
		}
	}
}

func dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// garbage sends 8 KiB of random bytes on the TCP port and closes.
func garbage(ctx context.Context, h *hop) error {
	c, err := dial(ctx, h.tcpAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	b := make([]byte, 8<<10)
	rand.Read(b)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Write(b)
	return err
}

// badHello sends a hello of another version, one that is no JSON, and on
// WebSocket a first message that is no hello.
func badHello(ctx context.Context, h *hop) error {
	for _, line := range []string{"BP/1 {\"type\":\"hello\",\"version\":99}\n", "BP/1 {not json\n"} {
		if c, err := dial(ctx, h.tcpAddr); err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			io.WriteString(c, line)
			io.Copy(io.Discard, c)
			c.Close()
		}
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+h.httpAddr+"/ws", nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	ws.WriteMessage(websocket.TextMessage, []byte("nope"))
	_, _, err = ws.ReadMessage()
	return err
}

// slowHeaders sends a request line, then a header line a second, until
// the hop closes the connection or 20 s pass.
func slowHeaders(ctx context.Context, h *hop) error {
	c, err := dial(ctx, h.httpAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: soak\r\n")
	for range 20 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c, "X-Dribble: 1\r\n"); err != nil {
			return err
		}
	}
	return nil
}

// idleKeepAlive makes one request and holds the connection idle until
// the hop closes it or 30 s pass.
func idleKeepAlive(ctx context.Context, h *hop) error {
	c, err := dial(ctx, h.httpAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: soak\r\n\r\n")
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = br.ReadByte() // until closed
	return err
}

// hugeFrame says hello on WebSocket and sends a message over the hops'
// --ws-max-message (1 MiB).
func hugeFrame(ctx context.Context, h *hop) error {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+h.httpAddr+"/ws", nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	hello, _ := flow.EncodeHello(flow.Hello{RunID: "soak-huge"})
	ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	ws.WriteMessage(websocket.TextMessage, hello)
	ws.WriteMessage(websocket.BinaryMessage, make([]byte, 2<<20))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return err
		}
	}
}

// vanish connects and leaves: on TCP after a hello with a reset, on
// WebSocket right after the upgrade.
func vanish(ctx context.Context, h *hop) error {
	c, err := dial(ctx, h.tcpAddr)
	if err != nil {
		return err
	}
	hello, _ := flow.EncodeHello(flow.Hello{RunID: "soak-vanish"})
	c.Write(append(append([]byte(flow.TCPHelloPrefix), hello...), '\n'))
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+h.httpAddr+"/ws", nil)
	if err != nil {
		return err
	}
	return ws.NetConn().Close()
}

// neverRead asks for a download and never reads it, for 10 s.
func neverRead(ctx context.Context, h *hop) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := flow.DialTCP(dctx, h.tcpAddr, flow.Hello{RunID: "soak-never-read", Direction: flow.Down, PayloadSize: 64 << 10}, flow.SocketOptions{})
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	return nil
}
