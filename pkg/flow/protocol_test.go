package flow_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

func TestParseHello(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		want  flow.Hello // compared when ok
		ok    bool
		errIn string // substring of the error when !ok
	}{
		// The smallest valid hello: direction defaults to up.
		{"minimal", `{"type":"hello","version":1}`, flow.Hello{Type: "hello", Version: 1, Direction: flow.Up}, true, ""},
		// Every field of version 1.
		{"full", `{"type":"hello","version":1,"run_id":"r1","direction":"both","payload_size":65536,"total_bytes":1000,"rate":2.5,"duration_ms":3000,"via":["relay-a"]}`,
			flow.Hello{Type: "hello", Version: 1, RunID: "r1", Direction: flow.Both, PayloadSize: 65536, TotalBytes: 1000, Rate: 2.5, DurationMS: 3000, Via: []string{"relay-a"}}, true, ""},
		// Unknown fields are ignored, so later versions can add some.
		{"unknown field", `{"type":"hello","version":1,"direction":"down","colour":"blue"}`, flow.Hello{Type: "hello", Version: 1, Direction: flow.Down}, true, ""},
		// The 2018 tool's hello: an up run of payloadSize*requestsTotal bytes.
		{"legacy", `{"payloadSize":1024,"requestsTotal":100}`, flow.Hello{Type: "hello", Version: 1, Direction: flow.Up, PayloadSize: 1024, TotalBytes: 102400, Legacy: true}, true, ""},
		// A legacy hello without a total: unbounded.
		{"legacy size only", `{"payloadSize":512}`, flow.Hello{Type: "hello", Version: 1, Direction: flow.Up, PayloadSize: 512, Legacy: true}, true, ""},
		// A legacy hello without a size: no total can be computed.
		{"legacy total only", `{"requestsTotal":7}`, flow.Hello{Type: "hello", Version: 1, Direction: flow.Up, Legacy: true}, true, ""},
		// Legacy field names inside a current hello are just unknown fields.
		{"current with legacy fields", `{"type":"hello","version":1,"payloadSize":5}`, flow.Hello{Type: "hello", Version: 1, Direction: flow.Up}, true, ""},
		// A legacy hello with a negative size is refused by Validate.
		{"legacy negative size", `{"payloadSize":-1,"requestsTotal":1}`, flow.Hello{}, false, "payload_size"},
		// A legacy hello whose size times count overflows int64 (issue 13).
		{"legacy overflow", `{"payloadSize":16777216,"requestsTotal":9223372036854775807}`, flow.Hello{}, false, "overflows"},
		// A legacy hello with a negative count: a negative total.
		{"legacy negative count", `{"payloadSize":1024,"requestsTotal":-1}`, flow.Hello{}, false, "negative"},
		// A legacy hello whose size does not fit.
		{"legacy huge size", `{"payloadSize":17000000,"requestsTotal":1}`, flow.Hello{}, false, "payload_size"},
		// Another protocol version.
		{"version 2", `{"type":"hello","version":2}`, flow.Hello{}, false, "version"},
		// No version at all.
		{"no version", `{"type":"hello"}`, flow.Hello{}, false, "version"},
		// A control message is not a hello.
		{"ack as hello", `{"type":"ack","bytes":1}`, flow.Hello{}, false, "type"},
		// An empty object is neither hello nor legacy hello.
		{"empty object", `{}`, flow.Hello{}, false, "type"},
		// Only up, down, both.
		{"bad direction", `{"type":"hello","version":1,"direction":"sideways"}`, flow.Hello{}, false, "direction"},
		// Payload messages are at most 16 MiB.
		{"payload too big", `{"type":"hello","version":1,"payload_size":16777217}`, flow.Hello{}, false, "payload_size"},
		// Exactly 16 MiB is allowed.
		{"payload at limit", `{"type":"hello","version":1,"payload_size":16777216}`, flow.Hello{Type: "hello", Version: 1, Direction: flow.Up, PayloadSize: 16 << 20}, true, ""},
		// Negative numbers mean nothing.
		{"negative rate", `{"type":"hello","version":1,"rate":-1}`, flow.Hello{}, false, "negative"},
		{"negative total", `{"type":"hello","version":1,"total_bytes":-1}`, flow.Hello{}, false, "negative"},
		// run_id is bounded, so logs are too.
		{"run id too long", `{"type":"hello","version":1,"run_id":"` + strings.Repeat("r", 129) + `"}`, flow.Hello{}, false, "run_id"},
		// The whole hello is bounded.
		{"too long", `{"type":"hello","version":1,"x":"` + strings.Repeat("x", flow.MaxHelloSize) + `"}`, flow.Hello{}, false, "longer"},
		// Not JSON.
		{"not json", `hello`, flow.Hello{}, false, "bad hello"},
		// Nothing.
		{"empty", ``, flow.Hello{}, false, "bad hello"},
		// JSON, but not an object.
		{"array", `[1,2]`, flow.Hello{}, false, "bad hello"},
		// A field of the wrong type.
		{"string version", `{"type":"hello","version":"1"}`, flow.Hello{}, false, "bad hello"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := flow.ParseHello([]byte(tc.in))
			if !tc.ok {
				var pe flow.ProtocolError
				if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.errIn) {
					t.Fatalf("ParseHello(%s) = %+v, %v; want a ProtocolError containing %q", tc.in, got, err, tc.errIn)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseHello(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestEncodeHelloRoundTrip(t *testing.T) {
	h := flow.Hello{RunID: "abc", Direction: flow.Down, PayloadSize: 100, TotalBytes: 1e9, Rate: 0.5, DurationMS: 10, Via: []string{"a", "b"}}
	b, err := flow.EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := flow.ParseHello(b)
	h.Type, h.Version = "hello", flow.ProtocolVersion
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip of %s: %+v, %v; want %+v", b, got, err, h)
	}
	// A hello that would not fit the TCP line is refused when encoding.
	if _, err := flow.EncodeHello(flow.Hello{RunID: strings.Repeat("r", 1100)}); err == nil {
		t.Error("EncodeHello accepted a hello longer than the limit")
	}
}

func TestParseControl(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want flow.Control
		ok   bool
	}{
		// An ack of nothing yet.
		{"ack zero", `{"type":"ack","bytes":0}`, flow.Control{Type: flow.Ack}, true},
		// Counts beyond 32 bits.
		{"ack large", `{"type":"ack","bytes":1099511627776}`, flow.Control{Type: flow.Ack, Bytes: 1 << 40}, true},
		// The writer's total.
		{"fin", `{"type":"fin","bytes":52428800}`, flow.Control{Type: flow.Fin, Bytes: 52428800}, true},
		// Field order and spacing do not matter.
		{"reordered", ` { "bytes" : 5 , "type" : "ack" } `, flow.Control{Type: flow.Ack, Bytes: 5}, true},
		// Missing bytes means 0.
		{"no bytes", `{"type":"fin"}`, flow.Control{Type: flow.Fin}, true},
		// One JSON value and nothing after it but spacing (issue 13).
		{"trailing bytes", `{"type":"ack","bytes":1} junk`, flow.Control{}, false},
		{"two values", `{"type":"ack","bytes":1}{"type":"ack","bytes":2}`, flow.Control{}, false},
		{"trailing space", "{\"type\":\"ack\",\"bytes\":1} \n", flow.Control{Type: flow.Ack, Bytes: 1}, true},
		// Cut off: the peer's mistake, not the end of its stream.
		{"truncated", `{"type":"ack","by`, flow.Control{}, false},
		// The server's first ack echoes the hello's via: no relay named itself.
		{"via empty", `{"type":"ack","bytes":0,"via":[]}`, flow.Control{Type: flow.Ack, Via: []string{}}, true},
		// Behind two bp-relays, in the order the stream passed them.
		{"via relays", `{"type":"ack","bytes":0,"via":["r1","r2:8091"]}`, flow.Control{Type: flow.Ack, Via: []string{"r1", "r2:8091"}}, true},
		// The first ack also says where the server sees the connection
		// from (the slow path: one per connection).
		{"seen from", `{"type":"ack","bytes":0,"via":[],"seen_from":"127.0.0.1:40312"}`, flow.Control{Type: flow.Ack, Via: []string{}, SeenFrom: "127.0.0.1:40312"}, true},
		{"seen from v6", `{"type":"ack","bytes":0,"via":["r1"],"seen_from":"[::1]:8091"}`, flow.Control{Type: flow.Ack, Via: []string{"r1"}, SeenFrom: "[::1]:8091"}, true},
		// An older server's first ack, without it: not said.
		{"old server", `{"type":"ack","bytes":0,"via":[]}`, flow.Control{Type: flow.Ack, Via: []string{}}, true},
		// Forms the fast path reads, and ones it leaves to JSON: an
		// escape, the fields the other way round, a seen_from cut off.
		{"seen from alone", `{"type":"ack","bytes":3,"seen_from":"10.0.0.1:1"}`, flow.Control{Type: flow.Ack, Bytes: 3, SeenFrom: "10.0.0.1:1"}, true},
		{"seen from escaped", `{"type":"ack","bytes":0,"via":[],"seen_from":"127.0.0.1\u003a1"}`, flow.Control{Type: flow.Ack, Via: []string{}, SeenFrom: "127.0.0.1:1"}, true},
		{"seen from first", `{"type":"ack","bytes":0,"seen_from":"[::1]:2","via":[]}`, flow.Control{Type: flow.Ack, Via: []string{}, SeenFrom: "[::1]:2"}, true},
		{"seen from cut off", `{"type":"ack","bytes":0,"via":[],"seen_from":"127.0.0.1:1}`, flow.Control{}, false},
		{"seen from then junk", `{"type":"ack","bytes":0,"seen_from":"1.2.3.4:5"}x`, flow.Control{}, false},
		// A seen_from that is no string is malformed.
		{"seen from number", `{"type":"ack","bytes":0,"seen_from":1}`, flow.Control{}, false},
		// Fields this side does not know are ignored, as older peers ignore
		// via and seen_from.
		{"unknown field", `{"type":"ack","bytes":2,"later":{"x":1}}`, flow.Control{Type: flow.Ack, Bytes: 2}, true},
		// A count never goes below zero.
		{"negative", `{"type":"ack","bytes":-1}`, flow.Control{}, false},
		// Only ack and fin exist.
		{"unknown type", `{"type":"nack","bytes":1}`, flow.Control{}, false},
		// A hello is not a control message.
		{"hello", `{"type":"hello","version":1}`, flow.Control{}, false},
		// No type.
		{"no type", `{"bytes":1}`, flow.Control{}, false},
		// Bytes are whole.
		{"fraction", `{"type":"ack","bytes":1.5}`, flow.Control{}, false},
		// Bytes are a number.
		{"string bytes", `{"type":"ack","bytes":"1"}`, flow.Control{}, false},
		// The canonical form's fast path (parseCanonicalControl) refuses
		// what JSON refuses, and reads what it does not know as JSON.
		{"leading zero", `{"type":"ack","bytes":01}`, flow.Control{}, false},
		{"longer type", `{"type":"ackx","bytes":1}`, flow.Control{}, false},
		{"nineteen digits", `{"type":"ack","bytes":1000000000000000000}`, flow.Control{Type: flow.Ack, Bytes: 1e18}, true},
		{"canonical then via", `{"type":"fin","bytes":7,"via":["r"]}`, flow.Control{Type: flow.Fin, Bytes: 7, Via: []string{"r"}}, true},
		// Beyond int64.
		{"overflow", `{"type":"ack","bytes":99999999999999999999}`, flow.Control{}, false},
		// Not JSON, and nothing at all.
		{"not json", `ack 1`, flow.Control{}, false},
		{"empty", ``, flow.Control{}, false},
		// Control messages are bounded.
		{"too long", `{"type":"ack","bytes":1,"pad":"` + strings.Repeat("p", flow.MaxControlSize) + `"}`, flow.Control{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := flow.ParseControl([]byte(tc.in))
			if !tc.ok {
				var pe flow.ProtocolError
				if err == nil || !errors.As(err, &pe) {
					t.Fatalf("ParseControl(%s) = %+v, %v; want a ProtocolError", tc.in, got, err)
				}
				if r := flow.ErrorReason(err); r != "protocol" {
					t.Fatalf("ParseControl(%s): reason %s, want protocol (%v)", tc.in, r, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseControl(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			// What AppendControl writes parses back to the same message.
			back, err := flow.ParseControl(flow.AppendControl(nil, got))
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("AppendControl round trip: %+v, %v; want %+v", back, err, got)
			}
		})
	}
}

// TestParseControlCommonForms: the acks every connection gets, the first
// one with its path included, are read without encoding/json (whose
// reflection allocates and grows a reader's stack for good): no
// allocation, but the seen_from string's.
func TestParseControlCommonForms(t *testing.T) {
	for in, most := range map[string]float64{
		`{"type":"ack","bytes":1048576}`:                                  0,
		`{"type":"fin","bytes":52428800}`:                                 0,
		`{"type":"ack","bytes":0,"via":[]}`:                               0,
		`{"type":"ack","bytes":0,"via":[],"seen_from":"127.0.0.1:51234"}`: 1,
	} {
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { _, _ = flow.ParseControl(b) }); n > most {
			t.Errorf("ParseControl(%s): %.0f allocations, want at most %.0f", in, n, most)
		}
	}
}

// TestFirstAckOlderReader: a client from before seen_from reads the new
// first ack as before: its own fields, the new one ignored (encoding/json
// ignores fields a struct does not have; the older fast path refuses the
// form and hands it to JSON).
func TestFirstAckOlderReader(t *testing.T) {
	b := flow.AppendControl(nil, flow.Control{Type: flow.Ack, Via: []string{}, SeenFrom: "127.0.0.1:51234"})
	var old struct {
		Type  string   `json:"type"`
		Bytes int64    `json:"bytes"`
		Via   []string `json:"via,omitempty"`
	}
	if err := json.Unmarshal(b, &old); err != nil || old.Type != "ack" || old.Bytes != 0 || old.Via == nil || len(old.Via) != 0 {
		t.Fatalf("an older reader of %s: %+v, %v", b, old, err)
	}
}

// frame builds one TCP frame.
func frame(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

func frameHeader(typ byte, size uint32) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], size)
	return b
}

// streamResult is what the server side of a raw TCP stream made of it.
type streamResult struct {
	hello     *flow.Hello
	acceptErr error
	framed    bool
	payload   []byte
	controls  []flow.Control
	end       error // the error that ended reading
}

// loopback is one listener on 127.0.0.1 shared by every raw-stream test
// (and fuzz iteration) of this process.
var loopback struct {
	once sync.Once
	ln   net.Listener
	err  error
}

// readRawStream sends raw on a real loopback TCP connection, closes it, and
// reads it on the other end the way bp-server does: AcceptTCP, then Read
// with readSize buffers until an error.
func readRawStream(t testing.TB, raw []byte, readSize int) streamResult {
	t.Helper()
	loopback.once.Do(func() { loopback.ln, loopback.err = net.Listen("tcp", "127.0.0.1:0") })
	if loopback.err != nil {
		t.Fatal(loopback.err)
	}
	client, err := net.Dial("tcp", loopback.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := loopback.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		client.Write(raw) // fails once the reader gave up: fine
		client.(*net.TCPConn).CloseWrite()
	}()
	defer func() { server.Close(); <-wrote }()

	var res streamResult
	h, c, err := flow.AcceptTCP(server, 5*time.Second)
	res.hello, res.acceptErr = h, err
	if err != nil {
		return res
	}
	res.framed = c.SpeaksControl()
	buf := make([]byte, readSize)
	for i := 0; i <= len(raw)+16; i++ {
		n, ctl, err := c.Read(buf)
		if n > len(buf) || n < 0 {
			t.Fatalf("Read returned %d bytes into a buffer of %d", n, len(buf))
		}
		res.payload = append(res.payload, buf[:n]...)
		if ctl.Type != "" {
			res.controls = append(res.controls, ctl)
		}
		if err != nil {
			res.end = err
			return res
		}
	}
	t.Fatalf("Read did not end after %d calls on %d bytes", len(raw)+16, len(raw))
	return res
}

// endKind sorts how a stream ended: a clean end, a truncated frame, or a
// protocol error.
func endKind(err error) string {
	var pe flow.ProtocolError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &pe):
		return "protocol"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case errors.Is(err, io.EOF):
		return "eof"
	}
	return "other: " + err.Error()
}

func TestTCPFrames(t *testing.T) {
	hello := []byte("BP/1 " + `{"type":"hello","version":1,"direction":"up","payload_size":5,"total_bytes":10}` + "\n")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	big := bytes.Repeat([]byte("0123456789"), 3000) // > a socket read, < slow at read size 1
	cases := []struct {
		name      string
		raw       []byte
		acceptErr bool   // AcceptTCP refuses the stream
		helloLess bool   // no hello: every byte is payload
		payload   []byte // payload bytes read
		controls  []flow.Control
		end       string // endKind of the error that ended reading
	}{
		// PROTOCOL.md's example: two data frames and a fin.
		{"example", cat(hello, frame('D', []byte("aaaaa")), frame('D', []byte("aaaaa")), frame('C', []byte(`{"type":"fin","bytes":10}`))),
			false, false, []byte("aaaaaaaaaa"), []flow.Control{{Type: flow.Fin, Bytes: 10}}, "eof"},
		// A data frame larger than the read size arrives in pieces, whole.
		{"big frame", cat(hello, frame('D', big)), false, false, big, nil, "eof"},
		// Control frames between data frames come out in order.
		{"interleaved", cat(hello, frame('D', []byte("ab")), frame('C', []byte(`{"type":"ack","bytes":3}`)), frame('D', []byte("c"))),
			false, false, []byte("abc"), []flow.Control{{Type: flow.Ack, Bytes: 3}}, "eof"},
		// Empty data frames are allowed and carry nothing.
		{"empty data frame", cat(hello, frame('D', nil), frame('D', []byte("x"))), false, false, []byte("x"), nil, "eof"},
		// A hello and nothing else: a clean end.
		{"hello only", hello, false, false, nil, nil, "eof"},
		// No hello: every byte, whatever it looks like, is payload.
		{"hello-less", []byte("plain bytes, D\x00\x00\x00\x01 not a frame"), false, true, []byte("plain bytes, D\x00\x00\x00\x01 not a frame"), nil, "eof"},
		// A lookalike prefix with another version is payload too.
		{"other prefix", []byte("BP/2 {}\n"), false, true, []byte("BP/2 {}\n"), nil, "eof"},
		// A stream shorter than the prefix that matches it so far: payload.
		{"partial prefix", []byte("BP/"), false, true, []byte("BP/"), nil, "eof"},
		// A peer that closes at once: hello-less, empty.
		{"empty stream", nil, false, true, nil, nil, "eof"},
		// A large hello-less stream, counted exactly.
		{"hello-less big", big, false, true, big, nil, "eof"},
		// The prefix, then no newline before the peer closes.
		{"unterminated hello", []byte("BP/1 {\"type\":\"hello\""), true, false, nil, nil, ""},
		// The prefix, then a line longer than the hello limit.
		{"hello too long", append([]byte("BP/1 "), bytes.Repeat([]byte("x"), flow.MaxHelloSize)...), true, false, nil, nil, ""},
		// A hello line that is not a hello.
		{"bad hello", []byte("BP/1 {\"type\":\"ack\"}\n"), true, false, nil, nil, ""},
		// An unknown frame type.
		{"unknown frame", cat(hello, frame('X', []byte("abc"))), false, false, nil, nil, "protocol"},
		// A data frame announcing more than 16 MiB.
		{"data frame too big", cat(hello, frameHeader('D', flow.MaxPayloadSize+1)), false, false, nil, nil, "protocol"},
		// A control frame announcing more than 4 KiB.
		{"control frame too big", cat(hello, frameHeader('C', flow.MaxControlSize+1)), false, false, nil, nil, "protocol"},
		// A control frame whose body is not a control message.
		{"bad control", cat(hello, frame('C', []byte(`{"type":"nope"}`))), false, false, nil, nil, "protocol"},
		// The stream ends inside a frame header.
		{"truncated header", cat(hello, []byte{'D', 0, 0}), false, false, nil, nil, "truncated"},
		// The stream ends inside a data frame: what arrived is payload.
		{"truncated data", cat(hello, frameHeader('D', 10), []byte("abc")), false, false, []byte("abc"), nil, "truncated"},
		// The stream ends right after a control frame's header.
		{"truncated control, no body", cat(hello, frameHeader('C', 20)), false, false, nil, nil, "truncated"},
		// The stream ends inside a control frame's body.
		{"truncated control", cat(hello, frameHeader('C', 20), []byte(`{"ty`)), false, false, nil, nil, "truncated"},
	}
	for _, tc := range cases {
		for _, readSize := range []int{1, 7, 64 << 10} {
			res := readRawStream(t, tc.raw, readSize)
			if tc.acceptErr {
				if res.acceptErr == nil {
					t.Errorf("%s: AcceptTCP accepted the stream (hello %+v)", tc.name, res.hello)
				}
				continue
			}
			if res.acceptErr != nil {
				t.Errorf("%s: AcceptTCP: %v", tc.name, res.acceptErr)
				continue
			}
			if (res.hello == nil) != tc.helloLess || res.framed == tc.helloLess {
				t.Errorf("%s: hello %+v, framed %v; want hello-less %v", tc.name, res.hello, res.framed, tc.helloLess)
			}
			if !bytes.Equal(res.payload, tc.payload) {
				t.Errorf("%s (read size %d): %d payload bytes, want %d", tc.name, readSize, len(res.payload), len(tc.payload))
			}
			if !reflect.DeepEqual(res.controls, tc.controls) {
				t.Errorf("%s: controls %+v, want %+v", tc.name, res.controls, tc.controls)
			}
			if got := endKind(res.end); got != tc.end {
				t.Errorf("%s (read size %d): ended with %v (%s), want %s", tc.name, readSize, res.end, got, tc.end)
			}
		}
	}
}
