package e2e

import (
	"bufio"
	"bytes"
	bin "encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docExchange is one line of docs/PROTOCOL.md's TCP example: who sends, and
// the exact bytes.
type docExchange struct {
	fromClient bool
	bytes      []byte
	text       string
}

// frameRE is one frame as the doc writes it: type, eight hex digits of
// length, body (no spaces in a body).
var frameRE = regexp.MustCompile(`([DC]) ([0-9a-f]{8}) (\S+)`)

// docClientAddr is the client's address in docs/PROTOCOL.md's example: the
// server's first ack echoes it (seen_from), and the test's own address
// takes its place.
const docClientAddr = "127.0.0.1:51234"

// protocolDocExample reads the fenced block after "Example, an `up` run" in
// docs/PROTOCOL.md and turns each line into the bytes it stands for,
// checking on the way that every frame's stated length is its body's; the
// example's client address becomes client (the frame's length with it).
func protocolDocExample(t *testing.T, client string) []docExchange {
	t.Helper()
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Example, an `up` run")
	if !ok {
		t.Fatal("docs/PROTOCOL.md: no TCP example")
	}
	_, rest, _ = strings.Cut(rest, "```\n")
	block, _, _ := strings.Cut(rest, "```")
	var out []docExchange
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		var from bool
		var body string
		switch {
		case strings.HasPrefix(line, "client -> server  "):
			from, body = true, strings.TrimPrefix(line, "client -> server  ")
		case strings.HasPrefix(line, "server -> client  "):
			body = strings.TrimPrefix(line, "server -> client  ")
		default:
			continue // "client closes"
		}
		if strings.HasPrefix(body, "BP/1 ") {
			out = append(out, docExchange{from, []byte(strings.TrimSuffix(body, `\n`) + "\n"), line})
			continue
		}
		var b []byte
		for _, m := range frameRE.FindAllStringSubmatch(body, -1) {
			n, _ := hex.DecodeString(m[2])
			if got := bin.BigEndian.Uint32(n); int(got) != len(m[3]) {
				t.Errorf("docs/PROTOCOL.md: %q says %d bytes, its body has %d", m[0], got, len(m[3]))
			}
			frameBody := strings.ReplaceAll(m[3], docClientAddr, client)
			b = append(bin.BigEndian.AppendUint32(append(b, m[1][0]), uint32(len(frameBody))), frameBody...)
		}
		if len(b) == 0 {
			t.Fatalf("docs/PROTOCOL.md: cannot read %q", line)
		}
		out = append(out, docExchange{from, b, line})
	}
	return out
}

// TestProtocolDocExample plays docs/PROTOCOL.md's TCP example against a real
// bp-server: the client's lines are sent as written, and every byte the
// server sends must be the doc's, in the doc's order.
func TestProtocolDocExample(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c, err := net.DialTimeout("tcp", srv.TCPAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := protocolDocExample(t, c.LocalAddr().String())
	if len(steps) < 4 {
		t.Fatalf("docs/PROTOCOL.md's example has %d exchanges, want at least 4", len(steps))
	}
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(c)
	for _, s := range steps {
		if s.fromClient {
			if _, err := c.Write(s.bytes); err != nil {
				t.Fatalf("%s: %v", s.text, err)
			}
			continue
		}
		got := make([]byte, len(s.bytes))
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("%s: read: %v (got %q)", s.text, err, got)
		}
		if !bytes.Equal(got, s.bytes) {
			t.Errorf("%s: server sent %q", s.text, got)
		}
	}
	// After the final ack the server sends nothing more; the client closes.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if extra, _ := r.Peek(1); len(extra) > 0 {
		t.Errorf("server sent more than the doc shows: %q", extra)
	}
}
