//go:build !linux

package flow

// Splice is Linux's splice(2) passthrough (splice_linux.go); elsewhere
// NewSplice returns nil and a relay copies.
type Splice struct{}

// NewSplice returns nil: no splice(2) on this platform.
func NewSplice(src, dst Conn, size int) *Splice { return nil }

func (*Splice) Ready() bool                { return false }
func (*Splice) Size() int                  { return 0 }
func (*Splice) Held() int                  { return 0 }
func (*Splice) Peek(b []byte) (int, error) { panic("unreachable") }
func (*Splice) Fill(max int) (int, error)  { panic("unreachable") }
func (*Splice) Drain() (int, error)        { panic("unreachable") }
func (*Splice) OnWait(func())              {}
func (*Splice) Close() error               { return nil }
