package sockstat

import "encoding/binary"

// inet_diag bytecode (linux/inet_diag.h): the ops a dump's filter is made
// of, each struct inet_diag_bc_op {code, yes u8; no u16}, host order.
const (
	bcJump = 1  // INET_DIAG_BC_JMP: go on at no
	bcSEq  = 11 // INET_DIAG_BC_S_EQ: local port equals the next op's no
	bcDEq  = 12 // INET_DIAG_BC_D_EQ: remote port equals the next op's no
	bcOp   = 4  // sizeof(struct inet_diag_bc_op)
)

// hopFilter is the kernel filter of a dump that answers only the hop's
// sockets: local port one of the downstream ports, or remote port one of
// the upstream ones (HopPorts, as hopClassifier reads them; the classifier
// still decides, the filter only spares the kernel and this process every
// other socket of the namespace). On a host with tens of thousands of
// sockets a whole dump takes long enough that the sampler's pacing
// (runPaced: a pass at most a tenth of the time) leaves seconds between
// passes, and every figure is that old. nil when there is no port.
//
// The ops run in order while a test holds ("yes" steps to the next op:
// the kernel's audit walks them that way); a port test that fails skips
// its jump and tries the next port, one that holds reaches its jump to
// the end, which accepts. The last test accepts by stepping onto the end,
// and rejects by jumping past it.
func hopFilter(p HopPorts) []byte {
	type test struct {
		code uint8
		port uint16
	}
	var tests []test
	for _, port := range p.Downstream {
		tests = append(tests, test{bcSEq, port})
	}
	for _, port := range p.Upstream {
		tests = append(tests, test{bcDEq, port})
	}
	if len(tests) == 0 || len(tests)*3*bcOp > 0xffff {
		return nil
	}
	size := len(tests)*3*bcOp - bcOp // the last test has no jump
	bc := make([]byte, 0, size)
	op := func(code, yes uint8, no uint16) {
		bc = append(bc, code, yes)
		bc = binary.NativeEndian.AppendUint16(bc, no)
	}
	for i, t := range tests {
		if i == len(tests)-1 {
			op(t.code, 2*bcOp, 3*bcOp) // yes: onto the end; no: past it
			op(0, 0, t.port)
			break
		}
		op(t.code, 2*bcOp, 3*bcOp) // no: over the jump, to the next test
		op(0, 0, t.port)
		op(bcJump, bcOp, uint16(size-len(bc))) // to the end: accept
	}
	return bc
}
