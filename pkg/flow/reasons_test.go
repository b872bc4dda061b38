package flow_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-backpressure/go-backpressure/internal/flowtest"
	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// rawPeer is a misbehaving client, on either transport: it sends what a
// test case says, frame by frame, with no session of its own.
type rawPeer interface {
	hello(line string)          // the hello's JSON
	payload(n int)              // one payload message (data frame) of n bytes
	control(body string)        // one control message with this body, as is
	abort()                     // close the socket without any goodbye
	closeCode(t *testing.T) int // wait for the server's close; its WebSocket code (0 on TCP)
}

type tcpPeer struct{ nc net.Conn }

func (p tcpPeer) hello(line string) { p.nc.Write([]byte(flow.TCPHelloPrefix + line + "\n")) }
func (p tcpPeer) frame(typ byte, body []byte, size int) {
	hdr := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], uint32(size))
	p.nc.Write(append(hdr, body...))
}
func (p tcpPeer) payload(n int) {
	if n > flow.MaxPayloadSize {
		p.frame('D', nil, n) // the header alone is refused
		return
	}
	p.frame('D', make([]byte, n), n)
}
func (p tcpPeer) control(body string) { p.frame('C', []byte(body), len(body)) }
func (p tcpPeer) abort()              { p.nc.Close() }
func (p tcpPeer) closeCode(t *testing.T) int {
	p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, p.nc)
	return 0
}

type wsPeer struct{ ws *websocket.Conn }

func (p wsPeer) hello(line string)   { p.ws.WriteMessage(websocket.TextMessage, []byte(line)) }
func (p wsPeer) payload(n int)       { p.ws.WriteMessage(websocket.BinaryMessage, make([]byte, n)) }
func (p wsPeer) control(body string) { p.ws.WriteMessage(websocket.TextMessage, []byte(body)) }
func (p wsPeer) abort()              { p.ws.NetConn().Close() }
func (p wsPeer) closeCode(t *testing.T) int {
	p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := p.ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Errorf("client read %v, want a close frame", err)
			return -1
		}
	}
}

// reasonServers starts bp-server in miniature on both transports (a 64 KiB
// WebSocket message limit) and returns how to dial each, and the errors
// their connections ended with (refused hellos included).
func reasonServers(t *testing.T) (dial map[flow.Protocol]func() rawPeer, results map[flow.Protocol]<-chan error) {
	tcpAddr, tcpRes := flowtest.StartTCPServer(t, flow.ReadSettings{}, flow.SocketOptions{})
	tcpErrs := make(chan error, 16)
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case r := <-tcpRes:
				tcpErrs <- r.Err
			case <-stop:
				return
			}
		}
	}()
	wsErrs := make(chan error, 16)
	up := flow.NewUpgrader()
	up.MaxMessageSize = 64 << 10
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, c, err := up.Accept(w, r)
		if err == nil {
			_, err = flow.NewSession(c, flowtest.ServerPlan(h, flow.ReadSettings{}), nil).Run(context.Background())
		}
		wsErrs <- err
	}))
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	dial = map[flow.Protocol]func() rawPeer{
		flow.TCP: func() rawPeer {
			nc, err := net.Dial("tcp", tcpAddr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			return tcpPeer{nc}
		},
		flow.WebSocket: func() rawPeer {
			ws, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() })
			return wsPeer{ws}
		},
	}
	return dial, map[flow.Protocol]<-chan error{flow.TCP: tcpErrs, flow.WebSocket: wsErrs}
}

const (
	upHello   = `{"type":"hello","version":1,"direction":"up","total_bytes":1000000}`
	downHello = `{"type":"hello","version":1,"direction":"down","payload_size":1000,"total_bytes":10000000}`
)

// TestErrorReasons (issue 13, defects 6 and 7): every way a peer breaks a
// run is counted under the reason that happened, the same on TCP and
// WebSocket, and a WebSocket peer is told why with the close code that
// fits.
func TestErrorReasons(t *testing.T) {
	dial, results := reasonServers(t)
	for _, tc := range []struct {
		name   string
		only   flow.Protocol // "": both transports
		send   func(p rawPeer)
		reason string
		wsCode int // the WebSocket close code the client reads (0: none expected)
	}{
		{"empty control message", "", func(p rawPeer) { p.hello(upHello); p.payload(1000); p.control("") }, "protocol", 1003},
		{"truncated control message", "", func(p rawPeer) { p.hello(upHello); p.payload(1000); p.control(`{"type":"fin","by`) }, "protocol", 1003},
		{"trailing bytes after a control message", "", func(p rawPeer) {
			p.hello(upHello)
			p.payload(1000)
			p.control(`{"type":"fin","bytes":1000} and more`)
		}, "protocol", 1003},
		{"peer closes mid-run", "", func(p rawPeer) { p.hello(upHello); p.payload(1000); time.Sleep(50 * time.Millisecond); p.abort() }, "peer_closed", 0},
		{"oversized payload message", flow.TCP, func(p rawPeer) { p.hello(upHello); p.payload(flow.MaxPayloadSize + 1) }, "too_large", 0},
		{"oversized payload message", flow.WebSocket, func(p rawPeer) { p.hello(upHello); p.payload(64<<10 + 1) }, "too_large", 1009},
		{"oversized first binary message", flow.WebSocket, func(p rawPeer) { p.payload(64<<10 + 1) }, "too_large", 1009},
		{"payload after the fin", "", func(p rawPeer) {
			p.hello(upHello)
			p.payload(1000)
			p.control(`{"type":"fin","bytes":1000}`)
			p.payload(10)
		}, "protocol", 1002},
		{"a second fin", "", func(p rawPeer) {
			p.hello(upHello)
			p.payload(1000)
			p.control(`{"type":"fin","bytes":1000}`)
			p.control(`{"type":"fin","bytes":1000}`)
		}, "protocol", 1002},
		{"acks that go backwards", "", func(p rawPeer) {
			p.hello(downHello)
			time.Sleep(100 * time.Millisecond) // the server has written
			p.control(`{"type":"ack","bytes":100}`)
			p.control(`{"type":"ack","bytes":50}`)
		}, "protocol", 1002},
		{"payload against the direction", "", func(p rawPeer) { p.hello(downHello); p.payload(10) }, "protocol", 1002},
		{"legacy hello whose total overflows", "", func(p rawPeer) {
			p.hello(`{"payloadSize":16777216,"requestsTotal":9223372036854775807}`)
		}, "hello", 1008},
	} {
		for _, proto := range []flow.Protocol{flow.TCP, flow.WebSocket} {
			if tc.only != "" && tc.only != proto {
				continue
			}
			t.Run(tc.name+"/"+string(proto), func(t *testing.T) {
				p := dial[proto]()
				tc.send(p)
				code := 0
				if tc.reason != "peer_closed" {
					code = p.closeCode(t)
				}
				var err error
				select {
				case err = <-results[proto]:
				case <-time.After(10 * time.Second):
					t.Fatal("the server's connection did not end")
				}
				if got := flow.ErrorReason(err); got != tc.reason {
					t.Errorf("server: reason %s (%v), want %s", got, err, tc.reason)
				}
				if proto == flow.WebSocket && code != tc.wsCode {
					t.Errorf("client read close code %d, want %d (server: %v)", code, tc.wsCode, err)
				}
			})
		}
	}
}

// TestServerPayloadDuringUpload (issue 13, defect 7): a server that writes
// payload on an upload (the client alone writes) breaks the protocol; the
// client ends with reason protocol on both transports.
func TestServerPayloadDuringUpload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		line := make([]byte, flow.MaxHelloSize)
		nc.Read(line)
		nc.Write([]byte{'D', 0, 0, 0, 10, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'})
		io.Copy(io.Discard, nc)
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.ReadMessage()
		ws.WriteMessage(websocket.BinaryMessage, []byte("0123456789"))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	for _, target := range []string{"tcp://" + ln.Addr().String(), "ws" + strings.TrimPrefix(srv.URL, "http")} {
		t.Run(target[:strings.Index(target, ":")], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tg, err := flow.ParseTarget(target)
			if err != nil {
				t.Fatal(err)
			}
			c, err := flow.Dial(ctx, tg, &flow.Hello{RunID: "up", PayloadSize: 1 << 10, TotalBytes: 64 << 20}, flow.SocketOptions{})
			if err != nil {
				t.Fatal(err)
			}
			plan := flowtest.ClientPlan(flow.Up, 64<<20)
			plan.Write.Rate = 100 // slow: the server's payload arrives mid-run
			_, err = flow.NewSession(c, plan, nil).Run(ctx)
			if got := flow.ErrorReason(err); got != "protocol" {
				t.Errorf("client: reason %s (%v), want protocol", got, err)
			}
		})
	}
}
