//go:build linux

package sockstat

import (
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ssSocket is what ss -tinm printed for one socket: the columns, and the
// detail line's fields this test compares (absent fields are 0: ss leaves
// out snd_wnd and notsent at zero).
type ssSocket struct {
	recvQ, sendQ        int
	local, peer         netip.AddrPort
	rb, tb              int
	sndWnd, notsent     int
	rcvWnd              int
	hasRcvWnd, hasSkmem bool
}

var ssField = regexp.MustCompile(`\b(snd_wnd|rcv_wnd|notsent):(\d+)`)
var ssSkmem = regexp.MustCompile(`skmem:\(r\d+,rb(\d+),t\d+,tb(\d+),`)

// readSS runs iproute2's ss, an independent reader of the same kernel
// tables, for the sockets on port.
func readSS(t *testing.T, port uint16) []ssSocket {
	t.Helper()
	ss, err := exec.LookPath("ss")
	if err != nil {
		t.Skip("ss not installed (apt-get install iproute2)")
	}
	p := strconv.Itoa(int(port))
	out, err := exec.Command(ss, "-tinmH", "( sport = :"+p+" or dport = :"+p+" )").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var socks []ssSocket
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		cols := strings.Fields(lines[i])
		if len(cols) < 5 {
			t.Fatalf("ss: odd line %q", lines[i])
		}
		var s ssSocket
		s.recvQ, _ = strconv.Atoi(cols[1])
		s.sendQ, _ = strconv.Atoi(cols[2])
		s.local, _ = netip.ParseAddrPort(cols[3])
		s.peer, _ = netip.ParseAddrPort(cols[4])
		for _, m := range ssField.FindAllStringSubmatch(lines[i+1], -1) {
			n, _ := strconv.Atoi(m[2])
			switch m[1] {
			case "snd_wnd":
				s.sndWnd = n
			case "rcv_wnd":
				s.rcvWnd, s.hasRcvWnd = n, true
			case "notsent":
				s.notsent = n
			}
		}
		if m := ssSkmem.FindStringSubmatch(lines[i+1]); m != nil {
			s.rb, _ = strconv.Atoi(m[1])
			s.tb, _ = strconv.Atoi(m[2])
			s.hasSkmem = true
		}
		socks = append(socks, s)
	}
	return socks
}

// findDiag returns the dumped socket with the given local address.
// findDiag is the socket from local to remote: both ends, since Linux
// gives one ephemeral port to connections towards different peers, and on
// a machine running other tests a local address alone can name two.
func findDiag(t *testing.T, socks []DiagSocket, local, remote netip.AddrPort) DiagSocket {
	t.Helper()
	for _, s := range socks {
		if s.Local == local && s.Remote == remote {
			return s
		}
	}
	t.Fatalf("no socket %v -> %v in the dump of %d sockets", local, remote, len(socks))
	return DiagSocket{}
}

func addrPort(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }

// stableDump dumps until two dumps in a row agree on the two sockets, so
// that ss, read between them, saw the same numbers.
func stableDump(t *testing.T, w, r netip.AddrPort, between func()) (DiagSocket, DiagSocket) {
	t.Helper()
	key := func(s DiagSocket) [4]int {
		return [4]int{s.Sample.RecvQueue, s.Sample.SendQueue, int(s.Sample.PeerWindow), int(s.Sample.OwnWindow)}
	}
	for range 50 {
		before, err := DumpSockets(nil)
		if err != nil {
			t.Fatal(err)
		}
		between()
		after, err := DumpSockets(nil)
		if err != nil {
			t.Fatal(err)
		}
		w1, r1 := findDiag(t, before, w, r), findDiag(t, before, r, w)
		w2, r2 := findDiag(t, after, w, r), findDiag(t, after, r, w)
		if key(w1) == key(w2) && key(r1) == key(r2) {
			return w2, r2
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the sockets' queues never held still between two dumps")
	return DiagSocket{}, DiagSocket{}
}

// TestDumpAgreesWithSS: a connection whose reader does not read, so its
// queues hold still; the dump and ss -tinm report the same queues,
// windows and buffers for both of its sockets.
func TestDumpAgreesWithSS(t *testing.T) {
	writer, reader := tcpPair(t)
	accepted := fillPipe(t, writer)
	time.Sleep(100 * time.Millisecond) // the last segments and window updates
	wAddr, rAddr := addrPort(writer.LocalAddr()), addrPort(reader.LocalAddr())
	var ss []ssSocket
	w, r := stableDump(t, wAddr, rAddr, func() { ss = readSS(t, rAddr.Port()) })
	byEnds := map[[2]netip.AddrPort]ssSocket{}
	for _, s := range ss {
		byEnds[[2]netip.AddrPort{s.local, s.peer}] = s
	}
	sw, sr := byEnds[[2]netip.AddrPort{wAddr, rAddr}], byEnds[[2]netip.AddrPort{rAddr, wAddr}]
	if sw.local != wAddr || sr.local != rAddr {
		t.Fatalf("ss did not list both sockets: %+v", ss)
	}
	t.Logf("writer accepted %d bytes; diag: writer send queue %d (unsent %d, peer window %d), reader recv queue %d (own window %d); ss: Send-Q %d notsent %d snd_wnd %d, Recv-Q %d",
		accepted, w.Sample.SendQueue, w.Sample.SendQueueNotSent, w.Sample.PeerWindow, r.Sample.RecvQueue, r.Sample.OwnWindow, sw.sendQ, sw.notsent, sw.sndWnd, sr.recvQ)
	if w.Sample.SendQueue == 0 || r.Sample.RecvQueue == 0 {
		t.Fatalf("queues empty behind a reader that does not read: send %d, recv %d", w.Sample.SendQueue, r.Sample.RecvQueue)
	}
	check := func(what string, diag, ss int) {
		t.Helper()
		if diag != ss {
			t.Errorf("%s: diag %d, ss %d", what, diag, ss)
		}
	}
	check("writer send queue", w.Sample.SendQueue, sw.sendQ)
	check("writer recv queue", w.Sample.RecvQueue, sw.recvQ)
	check("reader recv queue", r.Sample.RecvQueue, sr.recvQ)
	check("reader send queue", r.Sample.SendQueue, sr.sendQ)
	if w.Sample.Has&FieldSendQueueNotSent != 0 {
		check("writer unsent", w.Sample.SendQueueNotSent, sw.notsent)
	}
	if w.Sample.Has&FieldPeerWindow != 0 {
		check("writer peer window", int(w.Sample.PeerWindow), sw.sndWnd)
		check("reader peer window", int(r.Sample.PeerWindow), sr.sndWnd)
	}
	if r.Sample.Has&FieldOwnWindow != 0 {
		if sr.hasRcvWnd {
			check("reader own window", int(r.Sample.OwnWindow), sr.rcvWnd)
		} else { // an ss older than rcv_wnd: the window the writer was told
			check("reader own window (as the writer's snd_wnd)", int(r.Sample.OwnWindow), sw.sndWnd)
		}
	}
	if !w.HasMem || !sw.hasSkmem {
		t.Fatalf("memory info missing: diag %v, ss %v", w.HasMem, sw.hasSkmem)
	}
	check("writer send buffer", w.Mem.SendBuffer, sw.tb)
	check("reader receive buffer", r.Mem.RecvBuffer, sr.rb)
}

// TestParseDiagMessageBroken: a message cut short, or with attributes
// that run past its end, is an error, not a socket of zeros.
func TestParseDiagMessageBroken(t *testing.T) {
	var s DiagSocket
	if err := ParseDiagMessage(make([]byte, 40), &s); err == nil {
		t.Error("a 40-byte message parsed")
	}
	msg := make([]byte, sizeofDiagMsg+4)
	msg[sizeofDiagMsg] = 200 // an attribute of 200 bytes in 4
	if err := ParseDiagMessage(msg, &s); err == nil {
		t.Error("an attribute longer than the message parsed")
	}
	// A header alone: queues known, TCP_INFO fields and memory not.
	if err := ParseDiagMessage(make([]byte, sizeofDiagMsg), &s); err != nil {
		t.Fatal(err)
	}
	if s.Sample.Has != FieldRecvQueue|FieldSendQueue || s.HasMem {
		t.Errorf("header only: Has %v, HasMem %v; want the queues only", s.Sample.Has, s.HasMem)
	}
}
