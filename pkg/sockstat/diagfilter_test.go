package sockstat

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func addrWithPort(p uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)
}

// runFilter is the kernel's inet_diag_bc_run (net/ipv4/inet_diag.c) over
// bc for a socket with these ports, for the filter's tests on any system.
func runFilter(bc []byte, local, remote uint16) bool {
	n := len(bc)
	for at := 0; n > 0; {
		code, yes, no := bc[at], int(bc[at+1]), int(binary.NativeEndian.Uint16(bc[at+2:]))
		ok := true
		switch code {
		case bcJump:
			ok = false
		case bcSEq:
			ok = local == binary.NativeEndian.Uint16(bc[at+6:])
		case bcDEq:
			ok = remote == binary.NativeEndian.Uint16(bc[at+6:])
		}
		if ok {
			at, n = at+yes, n-yes
		} else {
			at, n = at+no, n-no
		}
	}
	return n == 0
}

// auditFilter is the kernel's inet_diag_bc_audit for port tests and
// jumps: every op reached by stepping on "yes", every "no" in bounds and
// onto an op or just past the end.
func auditFilter(bc []byte) bool {
	ops := map[int]bool{}
	at := 0
	for ; at < len(bc); at += int(bc[at+1]) {
		ops[at] = true
		if bc[at+1] == 0 || bc[at+1]&3 != 0 {
			return false
		}
	}
	if at != len(bc) {
		return false // the steps on "yes" must end on the end
	}
	for at := range ops {
		rest, no := len(bc)-at, int(binary.NativeEndian.Uint16(bc[at+2:]))
		minLen := bcOp
		if bc[at] != bcJump {
			minLen = 2 * bcOp
		}
		if no < minLen || no > rest+4 || no&3 != 0 || (no < rest && !ops[at+no]) {
			return false
		}
	}
	return true
}

// TestHopFilter: the kernel filter keeps a socket when its local port is
// a downstream port or its remote port an upstream one, as hopClassifier
// does, and passes the kernel's audit.
func TestHopFilter(t *testing.T) {
	tests := []struct {
		name          string
		ports         HopPorts
		local, remote uint16
		keep          bool
	}{
		// The hop's listener side.
		{"downstream", HopPorts{Downstream: []uint16{8080}, Upstream: []uint16{9000}}, 8080, 40000, true},
		// Its connection to the server.
		{"upstream", HopPorts{Downstream: []uint16{8080}, Upstream: []uint16{9000}}, 40001, 9000, true},
		// The client's own socket toward the hop: remote 8080 is no upstream port.
		{"client", HopPorts{Downstream: []uint16{8080}, Upstream: []uint16{9000}}, 40000, 8080, false},
		// The server's socket: local 9000 is no downstream port.
		{"server", HopPorts{Downstream: []uint16{8080}, Upstream: []uint16{9000}}, 9000, 40001, false},
		// The last of several ports, each way.
		{"last downstream", HopPorts{Downstream: []uint16{1, 2, 3}}, 3, 5, true},
		{"last upstream", HopPorts{Downstream: []uint16{1}, Upstream: []uint16{7, 8}}, 5, 8, true},
		{"none of several", HopPorts{Downstream: []uint16{1, 2}, Upstream: []uint16{7, 8}}, 7, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bc := hopFilter(tt.ports)
			if !auditFilter(bc) {
				t.Fatalf("the kernel's audit would refuse % x", bc)
			}
			if got := runFilter(bc, tt.local, tt.remote); got != tt.keep {
				t.Errorf("local %d, remote %d: kept %v, want %v", tt.local, tt.remote, got, tt.keep)
			}
			_, classified := newHopClassifier(tt.ports).side(&DiagSocket{Local: addrWithPort(tt.local), Remote: addrWithPort(tt.remote)})
			if classified != tt.keep {
				t.Errorf("the classifier keeps it: %v; the filter must agree", classified)
			}
		})
	}
	if hopFilter(HopPorts{}) != nil {
		t.Error("no ports: want no filter (a whole dump)")
	}
}
