package sockstat

import (
	"net"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// WindowSide says whose receive window a WindowEvent is about.
type WindowSide int

const (
	// OwnWindow is the window this side advertises as a reader (tcpi_rcv_wnd).
	OwnWindow WindowSide = iota
	// PeerWindow is the window the peer advertised to this side as a writer
	// (tcpi_snd_wnd).
	PeerWindow
)

func (w WindowSide) String() string {
	if w == PeerWindow {
		return "peer"
	}
	return "own"
}

// WindowEvent is a receive window closing (reaching zero) or reopening, as
// seen by two consecutive samples of one connection.
type WindowEvent struct {
	// Conn is the connection's socket (flow.ConnInfo.Conn): it tells the
	// receiver which connection the event belongs to.
	Conn     net.Conn
	Protocol flow.Protocol
	Window   WindowSide
	// Closed is true when the window reached zero, false when it reopened.
	Closed bool
	At     time.Time
}
