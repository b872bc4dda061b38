//go:build linux

package flow_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// TestTCPOneReadPerFrame: a frame written alone into an empty socket, as a
// slow connection's are, costs its reader one read once it arrives (and
// the read that found the socket empty), not a header read and a body
// read: the kernel's count of this process's read system calls (syscr in
// /proc/self/io) over 60 such frames is at most 2.2 a frame, where it was
// 3. Both sides of a slow upload: the server's data frames, read into a
// 4 KiB buffer, and the client's acks, read into its 64-byte one.
//
// The writer is another process (this test binary, as
// TestHelperFrameWriter), so that its waits between frames (timers) cost
// this process no reads of the runtime's own (its netpoller's eventfd).
func TestTCPOneReadPerFrame(t *testing.T) {
	const frames = 60
	for _, tc := range []struct {
		name     string
		frame    string // the helper's -frame
		readSize int
	}{
		{"1 KiB data frames", "data", 4096},
		{"acks", "ack", 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperFrameWriter$")
			cmd.Env = append(os.Environ(), "BP_FRAME_WRITER="+ln.Addr().String(), "BP_FRAME="+tc.frame, "BP_FRAMES="+strconv.Itoa(frames))
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			nc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_, c, err := flow.AcceptTCP(nc, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, tc.readSize)
			before := readCalls(t)
			for got := 0; got < frames; got++ {
				if _, err := nc.Write([]byte{1}); err != nil { // go ahead: the writer sends the next frame
					t.Fatal(err)
				}
				// The frame whole: the first data frame comes in two
				// reads (before one, a read after a wait takes 256 bytes).
				for payload := 0; payload < 1024; {
					n, ctl, err := c.Read(buf)
					if err != nil {
						t.Fatalf("frame %d: %v", got, err)
					}
					if payload += n; ctl.Type == flow.Ack {
						break
					}
				}
			}
			calls := readCalls(t) - before
			if _, _, err := c.Read(buf); err != io.EOF {
				t.Errorf("after %d frames: %v, want EOF", frames, err)
			}
			perFrame := float64(calls) / frames
			t.Logf("%d read system calls for %d frames: %.2f a frame", calls, frames, perFrame)
			if perFrame > 2.2 {
				t.Errorf("%.2f read system calls a frame, want at most 2.2 (a header read and a body read were 3)", perFrame)
			}
		})
	}
}

// TestHelperFrameWriter is TestTCPOneReadPerFrame's writer, in a process
// of its own: it sends the hello, then one frame each time the reader
// sends a byte, 2 ms later, when the reader waits in an empty socket.
func TestHelperFrameWriter(t *testing.T) {
	addr := os.Getenv("BP_FRAME_WRITER")
	if addr == "" {
		t.Skip("the writer of TestTCPOneReadPerFrame")
	}
	f := frame('D', bytes.Repeat([]byte{'x'}, 1024))
	if os.Getenv("BP_FRAME") == "ack" {
		f = frame('C', []byte(`{"type":"ack","bytes":1024}`))
	}
	frames, _ := strconv.Atoi(os.Getenv("BP_FRAMES"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("BP/1 {\"type\":\"hello\",\"version\":1}\n")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	for range frames {
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
}

// readCalls is this process's read system calls so far (read, readv and
// the like: syscr in /proc/self/io).
func readCalls(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "syscr: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscr in /proc/self/io")
	return 0
}

// TestTCPReadsAcrossFrames: frames waiting whole in the socket, as at full
// speed, are read two to a system call by a buffer that holds two (the
// rest of one, the next header, the next frame and the header after it:
// tcpConn.readAcross), where each read stopped at its frame's end: the
// kernel's count of this process's read system calls (syscr) over 60
// frames of 1 KiB read with a 4 KiB buffer is at most 0.7 a frame (0.57
// seen: the first header and the end take a read each), where it was 1.05.
func TestTCPReadsAcrossFrames(t *testing.T) {
	const frames = 60
	stream := bytes.Repeat(frame('D', bytes.Repeat([]byte{'x'}, 1024)), frames)
	c := waitingInSocket(t, stream)
	buf := make([]byte, 4096)
	payload := 0
	before := readCalls(t)
	for {
		n, _, err := c.Read(buf)
		payload += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	calls := readCalls(t) - before
	if payload != frames*1024 {
		t.Fatalf("%d payload bytes, want %d", payload, frames*1024)
	}
	perFrame := float64(calls) / frames
	t.Logf("%d read system calls for %d frames: %.2f a frame", calls, frames, perFrame)
	if perFrame > 0.7 {
		t.Errorf("%.2f read system calls a frame, want at most 0.7 (a read that stopped at each frame's end made 1)", perFrame)
	}
}
