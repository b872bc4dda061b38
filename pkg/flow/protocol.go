package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ProtocolVersion is the version of the hello and control messages this code
// speaks. See docs/PROTOCOL.md.
const ProtocolVersion = 1

// TCPHelloPrefix starts the one hello line a client may send first on a raw
// TCP connection. A connection that does not start with it is hello-less: all
// of its bytes are payload (nc, socat).
const TCPHelloPrefix = "BP/1 "

// MaxHelloSize bounds the hello line (TCP) and hello message (WebSocket), so a
// peer cannot make the server buffer an unbounded line.
const MaxHelloSize = 1024

// MaxControlSize bounds one control message (ack, fin).
const MaxControlSize = 4096

// Direction says which way payload flows, seen from the client.
type Direction string

// The directions a client can ask for.
const (
	Up   Direction = "up"   // the client writes, the server reads
	Down Direction = "down" // the server writes, the client reads
	Both Direction = "both" // both at once, on the same connection
)

// ParseDirection checks a direction given by a user or a peer.
func ParseDirection(s string) (Direction, error) {
	switch d := Direction(s); d {
	case Up, Down, Both:
		return d, nil
	case "":
		return Up, nil
	}
	return "", fmt.Errorf("unknown direction %q (want up, down or both)", s)
}

// ClientWrites reports whether the client sends payload in this direction.
func (d Direction) ClientWrites() bool { return d == Up || d == Both || d == "" }

// ServerWrites reports whether the server sends payload in this direction.
func (d Direction) ServerWrites() bool { return d == Down || d == Both }

// Hello is what a client announces before its payload. For downloads it also
// tells the server how to write: the client's settings drive the whole run.
type Hello struct {
	Type        string    `json:"type"`
	Version     int       `json:"version"`
	RunID       string    `json:"run_id,omitempty"`
	Direction   Direction `json:"direction,omitempty"`
	PayloadSize int       `json:"payload_size,omitempty"`
	// TotalBytes is how many payload bytes the writer will send per
	// connection; 0 means "until the duration ends or the peer stops".
	TotalBytes int64 `json:"total_bytes,omitempty"`
	// Rate is the writer's pace in messages per second; 0 is as fast as the
	// path allows.
	Rate float64 `json:"rate,omitempty"`
	// DurationMS bounds the run in milliseconds; 0 means no time bound.
	DurationMS int64 `json:"duration_ms,omitempty"`
	// Via lists the hops the stream passed, each one appended by a relay.
	Via []string `json:"via,omitempty"`
	// Stream is the stream's place on a multiplexed connection (HTTP/2,
	// gRPC), from 0; absent on TCP and WebSocket.
	Stream int `json:"stream,omitempty"`
	// FullSpeed asks the reader to read this stream as fast as it can,
	// without its read delay, rate or pauses: bp-client --slow-streams
	// keeps K streams of a connection slow and sets it on the others, to
	// show whether the fast streams go on while the slow ones are held.
	FullSpeed bool `json:"full_speed,omitempty"`

	// Legacy is set for the 2018 go-backpressure hello
	// {"payloadSize":N,"requestsTotal":M}: its peers expect no acks and may
	// send payload as text messages.
	Legacy bool `json:"-"`
}

// Duration is the run's time bound as a time.Duration.
func (h Hello) Duration() time.Duration { return time.Duration(h.DurationMS) * time.Millisecond }

// Validate checks a hello received from a peer.
func (h Hello) Validate() error {
	if h.Version != ProtocolVersion {
		return fmt.Errorf("unsupported hello version %d (this side speaks %d)", h.Version, ProtocolVersion)
	}
	if _, err := ParseDirection(string(h.Direction)); err != nil {
		return err
	}
	if h.PayloadSize < 0 || h.PayloadSize > MaxPayloadSize {
		return fmt.Errorf("hello payload_size %d out of range 0..%d", h.PayloadSize, MaxPayloadSize)
	}
	if h.TotalBytes < 0 || h.Rate < 0 || h.DurationMS < 0 {
		return errors.New("hello has a negative total_bytes, rate or duration_ms")
	}
	if len(h.RunID) > 128 {
		return errors.New("hello run_id longer than 128 bytes")
	}
	return nil
}

// MaxPayloadSize bounds one payload message (and one TCP data frame).
const MaxPayloadSize = 16 << 20

// legacyHello is the first WebSocket message of the 2018 tool.
type legacyHello struct {
	PayloadSize   *int   `json:"payloadSize"`
	RequestsTotal *int64 `json:"requestsTotal"`
}

// ParseHello decodes a hello message body (without the TCP prefix). It
// accepts the current hello and the 2018 tool's legacy one. Its errors are
// ProtocolErrors.
func ParseHello(b []byte) (Hello, error) {
	h, err := parseHello(b)
	if err != nil {
		return Hello{}, ProtocolError{err}
	}
	return h, nil
}

func parseHello(b []byte) (Hello, error) {
	if len(b) > MaxHelloSize {
		return Hello{}, fmt.Errorf("%w: hello longer than %d bytes", ErrTooLarge, MaxHelloSize)
	}
	var h Hello
	if err := json.Unmarshal(b, &h); err != nil {
		return Hello{}, fmt.Errorf("bad hello: %v", err)
	}
	if h.Type == "" {
		var l legacyHello
		if err := json.Unmarshal(b, &l); err == nil && (l.PayloadSize != nil || l.RequestsTotal != nil) {
			lh := Hello{Type: "hello", Version: ProtocolVersion, Direction: Up, Legacy: true}
			if l.PayloadSize != nil {
				lh.PayloadSize = *l.PayloadSize
			}
			if l.RequestsTotal != nil && l.PayloadSize != nil {
				size, n := int64(*l.PayloadSize), *l.RequestsTotal
				if size > 0 && n > math.MaxInt64/size {
					return Hello{}, fmt.Errorf("legacy hello: payloadSize %d times requestsTotal %d overflows", size, n)
				}
				lh.TotalBytes = size * n
			}
			return lh, lh.Validate()
		}
	}
	if h.Type != "hello" {
		return Hello{}, fmt.Errorf("bad hello: type %q, want \"hello\"", h.Type)
	}
	if h.Direction == "" {
		h.Direction = Up
	}
	return h, h.Validate()
}

// EncodeHello returns the hello as JSON, without prefix or newline.
func EncodeHello(h Hello) ([]byte, error) {
	h.Type = "hello"
	if h.Version == 0 {
		h.Version = ProtocolVersion
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(b)+len(TCPHelloPrefix)+1 > MaxHelloSize {
		// A relay that appended itself to Via may reach this: too_large.
		return nil, tooLargef("hello of %d bytes exceeds %d", len(b)+len(TCPHelloPrefix)+1, MaxHelloSize)
	}
	return b, nil
}

// ControlType names a control message.
type ControlType string

// The control messages. See docs/PROTOCOL.md.
const (
	// Ack: the sender has read Bytes payload bytes of this connection so far.
	Ack ControlType = "ack"
	// Fin: the sender has finished writing; Bytes is its payload total.
	Fin ControlType = "fin"
)

// Control is one control message: an ack or a fin.
type Control struct {
	Type  ControlType `json:"type"`
	Bytes int64       `json:"bytes"`
	// Via, on the server's first ack, echoes the hello's via list (empty:
	// no relay named itself), so the client learns the path; nil: not
	// said. See docs/PROTOCOL.md.
	Via []string `json:"via,omitempty"`
	// SeenFrom, on the server's first ack, is the address ("ip:port") the
	// server sees this connection from: the client's own local address on
	// a direct path, a hop's when something that ended TCP (a proxy) or
	// rewrote the addresses (a NAT) sits in between, whether or not it
	// named itself in via. Empty: not said (an older server). It goes back
	// only to the client whose connection it describes. See
	// docs/PROTOCOL.md.
	SeenFrom string `json:"seen_from,omitempty"`
}

// echoesPath reports whether c carries the server's account of the path
// (its first ack): a via list or the address it sees the connection from.
func (c Control) echoesPath() bool { return c.Via != nil || c.SeenFrom != "" }

// ParseControl decodes a control message. Its errors are ProtocolErrors.
func ParseControl(b []byte) (Control, error) {
	c, err := parseControl(b)
	if err != nil {
		return Control{}, ProtocolError{err}
	}
	return c, nil
}

func parseControl(b []byte) (Control, error) {
	if len(b) > MaxControlSize {
		return Control{}, fmt.Errorf("control message longer than %d bytes", MaxControlSize)
	}
	if len(b) == 0 {
		return Control{}, errors.New("empty control message")
	}
	if c, ok := parseCanonicalControl(b); ok {
		return c, nil
	}
	// Unmarshal, not a Decoder: bytes after the JSON value are refused.
	// The JSON error is quoted, not wrapped: a cut-off message is the
	// peer breaking the protocol, not the end of its stream (io.EOF).
	var c Control
	if err := json.Unmarshal(b, &c); err != nil {
		return Control{}, fmt.Errorf("bad control message: %v", err)
	}
	switch c.Type {
	case Ack, Fin:
	default:
		return Control{}, fmt.Errorf("unknown control message type %q", c.Type)
	}
	if c.Bytes < 0 {
		return Control{}, fmt.Errorf("control message %s with negative bytes %d", c.Type, c.Bytes)
	}
	return c, nil
}

// parseCanonicalControl parses the forms AppendControl writes for an ack
// or fin without a via list or with an empty one, {"type":"ack","bytes":N},
// {"type":"ack","bytes":N,"via":[]} and bp-server's first ack on a path
// without bp-relays, {"type":"ack","bytes":N,"via":[],"seen_from":"ip:port"},
// which is nearly every control message: json.Unmarshal's reflection
// costs allocations and kilobytes of stack, which a slow connection's
// reader then keeps (its goroutine's stack grows to 8 KiB and stays), and
// every connection's first ack would pay it. Anything else, including
// every malformed message and an address with characters an ip:port does
// not have, is left to json.Unmarshal (ok false).
func parseCanonicalControl(b []byte) (Control, bool) {
	const prefix, mid = `{"type":"`, `","bytes":`
	rest, ok := bytes.CutPrefix(b, []byte(prefix))
	if !ok {
		return Control{}, false
	}
	var t ControlType
	switch {
	case bytes.HasPrefix(rest, []byte(Ack)):
		t = Ack
	case bytes.HasPrefix(rest, []byte(Fin)):
		t = Fin
	default:
		return Control{}, false
	}
	rest, ok = bytes.CutPrefix(rest[len(t):], []byte(mid))
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	digits := rest[:end]
	if !ok || len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(digits) > 1) {
		return Control{}, false
	}
	var n int64
	for _, d := range digits {
		n = n*10 + int64(d-'0')
	}
	c := Control{Type: t, Bytes: n}
	if !canonicalTail(&c, rest[end:]) {
		return Control{}, false
	}
	return c, true
}

// canonicalTail reads what follows the bytes in a canonical control
// message: an empty via list, a plain seen_from, both or neither, and the
// closing brace.
func canonicalTail(c *Control, tail []byte) bool {
	if rest, ok := bytes.CutPrefix(tail, []byte(`,"via":[]`)); ok {
		c.Via, tail = []string{}, rest
	}
	if rest, ok := bytes.CutPrefix(tail, []byte(`,"seen_from":"`)); ok {
		end := bytes.IndexByte(rest, '"')
		if end < 0 || !plainAddr(rest[:end]) {
			return false
		}
		c.SeenFrom, tail = string(rest[:end]), rest[end+1:]
	}
	return len(tail) == 1 && tail[0] == '}'
}

// plainAddr reports whether b holds only what an ip:port is written
// with (digits, hex letters, '.', ':', '[', ']'): nothing JSON would
// unescape or replace.
func plainAddr(b []byte) bool {
	for _, ch := range b {
		switch {
		case ch >= '0' && ch <= '9', ch >= 'a' && ch <= 'f', ch >= 'A' && ch <= 'F':
		case ch == '.', ch == ':', ch == '[', ch == ']':
		default:
			return false
		}
	}
	return true
}

// AppendControl appends the JSON form of c to dst without allocating when dst
// has room.
func AppendControl(dst []byte, c Control) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, c.Type...)
	dst = append(dst, `","bytes":`...)
	dst = strconv.AppendInt(dst, c.Bytes, 10)
	if c.Via != nil {
		// Rare (one ack per connection): json.Marshal quotes the names.
		via, _ := json.Marshal(c.Via)
		dst = append(dst, `,"via":`...)
		dst = append(dst, via...)
	}
	if c.SeenFrom != "" {
		// As rare: the first ack only.
		from, _ := json.Marshal(c.SeenFrom)
		dst = append(dst, `,"seen_from":`...)
		dst = append(dst, from...)
	}
	return append(dst, '}')
}
