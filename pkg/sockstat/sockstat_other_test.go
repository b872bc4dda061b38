//go:build !linux

package sockstat

import (
	"errors"
	"net"
	"testing"
)

// TestUnsupported checks the no-op build: everything reports
// ErrUnsupported and nothing pretends to have data.
func TestUnsupported(t *testing.T) {
	if Supported() {
		t.Error("Supported() = true")
	}
	if KernelFields() != 0 {
		t.Errorf("KernelFields() = %s, want none", KernelFields())
	}
	if MissingDescription() == "" {
		t.Error("MissingDescription() is empty, want a reason")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := NewReader(c); !errors.Is(err, ErrUnsupported) {
		t.Errorf("NewReader error = %v, want ErrUnsupported", err)
	}
	var r *Reader
	s := Sample{SendQueue: 1, Has: AllFields}
	if err := r.Read(&s); !errors.Is(err, ErrUnsupported) || s != (Sample{}) {
		t.Errorf("Read = %v, %+v; want ErrUnsupported and a zero Sample", err, s)
	}
	if _, err := ReadNetstat(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ReadNetstat error = %v, want ErrUnsupported", err)
	}
}
