package flow_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/flow"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>/ (and the
// f.Add calls below); `make fuzz` runs each target for a while.

// FuzzParseHello: no input panics; whatever is accepted is valid, and a
// current (non-legacy) hello survives EncodeHello and ParseHello unchanged.
func FuzzParseHello(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","version":1}`,
		`{"type":"hello","version":1,"run_id":"r","direction":"both","payload_size":65536,"total_bytes":1,"rate":1.5,"duration_ms":2,"via":["a"]}`,
		`{"payloadSize":1024,"requestsTotal":100}`,
		`{"payloadSize":9223372036854775807,"requestsTotal":9223372036854775807}`,
		`{"type":"hello","version":2}`,
		`{}`, ``, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := flow.ParseHello(b)
		if err != nil {
			return
		}
		if len(b) > flow.MaxHelloSize {
			t.Fatalf("accepted a hello of %d bytes", len(b))
		}
		if verr := h.Validate(); verr != nil {
			t.Fatalf("accepted an invalid hello %+v: %v", h, verr)
		}
		if h.Type != "hello" || h.Direction == "" {
			t.Fatalf("accepted hello has type %q, direction %q", h.Type, h.Direction)
		}
		if h.Legacy {
			if h.Direction != flow.Up {
				t.Fatalf("legacy hello with direction %q", h.Direction)
			}
			return
		}
		enc, err := flow.EncodeHello(h)
		if err != nil {
			return // too long for the TCP line once re-encoded: refused, fine
		}
		back, err := flow.ParseHello(enc)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", enc, err)
		}
		if len(h.Via) == 0 {
			h.Via = nil // "via":[] is omitted when encoding
		}
		if !reflect.DeepEqual(back, h) {
			t.Fatalf("round trip changed the hello:\n got %+v\nwant %+v", back, h)
		}
	})
}

// FuzzParseControl: no input panics; an accepted message is an ack or fin
// with a count >= 0 that survives AppendControl unchanged.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{
		`{"type":"ack","bytes":0}`, `{"type":"fin","bytes":52428800}`,
		`{"type":"ack","bytes":-1}`, `{"type":"ack","bytes":0,"via":[]}`, `{"type":"ack","bytes":3,"via":["r1","r\"2"]}`,
		`{"type":"ack","bytes":0,"via":[],"seen_from":"127.0.0.1:40312"}`, `{"type":"ack","bytes":0,"seen_from":"[::1]:1\u0000"}`, `{"type":"ack","bytes":0,"seen_from":""}`,
		`{"type":"ack","bytes":9,"seen_from":"1.2.3.4:5\"}"}`, `{"type":"fin","bytes":0,"via":[],"seen_from":"a"}`,
		`{"type":"ack","bytes":1e3}`, `{"type":"nack"}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := flow.ParseControl(b)
		// The fast path for the canonical form agrees with JSON itself.
		var ref flow.Control
		refOK := json.Unmarshal(b, &ref) == nil && len(b) <= flow.MaxControlSize &&
			(ref.Type == flow.Ack || ref.Type == flow.Fin) && ref.Bytes >= 0
		if refOK != (err == nil) || (refOK && !reflect.DeepEqual(ref, c)) {
			t.Fatalf("ParseControl(%q) = %+v, %v; json.Unmarshal: %+v (accepted: %v)", b, c, err, ref, refOK)
		}
		if err != nil {
			return
		}
		if len(b) > flow.MaxControlSize || (c.Type != flow.Ack && c.Type != flow.Fin) || c.Bytes < 0 {
			t.Fatalf("accepted %q as %+v", b, c)
		}
		back, err := flow.ParseControl(flow.AppendControl(nil, c))
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("AppendControl round trip: %+v, %v; want %+v", back, err, c)
		}
	})
}

// FuzzTCPFrames sends arbitrary bytes over a real loopback connection and
// checks what AcceptTCP and Read make of them against a reference decoder
// written from docs/PROTOCOL.md: the same hello, payload, control messages
// and end, whatever the read size.
func FuzzTCPFrames(f *testing.F) {
	hello := []byte("BP/1 {\"type\":\"hello\",\"version\":1}\n")
	f.Add(append(append([]byte{}, hello...), frame('D', []byte("abc"))...), uint16(7))
	f.Add(append(append([]byte{}, hello...), frame('C', []byte(`{"type":"fin","bytes":0}`))...), uint16(1))
	f.Add([]byte("raw bytes"), uint16(100))
	f.Add([]byte("BP/"), uint16(3))
	f.Fuzz(func(t *testing.T, raw []byte, readSize uint16) {
		if len(raw) > 1<<20 {
			return
		}
		size := int(readSize%4096) + 1
		want := referenceDecode(raw)
		got := readRawStream(t, raw, size)
		if (got.acceptErr != nil) != want.acceptErr {
			t.Fatalf("AcceptTCP error %v, reference expects an error: %v", got.acceptErr, want.acceptErr)
		}
		if want.acceptErr {
			return
		}
		if (got.hello == nil) != want.helloLess || got.framed == want.helloLess {
			t.Fatalf("hello %+v (framed %v), reference: hello-less %v", got.hello, got.framed, want.helloLess)
		}
		if got.hello != nil && !reflect.DeepEqual(*got.hello, want.hello) {
			t.Fatalf("hello %+v, reference %+v", *got.hello, want.hello)
		}
		if !bytes.Equal(got.payload, want.payload) {
			t.Fatalf("%d payload bytes, reference %d", len(got.payload), len(want.payload))
		}
		if len(got.controls) != len(want.controls) || (len(want.controls) > 0 && !reflect.DeepEqual(got.controls, want.controls)) {
			t.Fatalf("controls %+v, reference %+v", got.controls, want.controls)
		}
		if k := endKind(got.end); k != want.end {
			t.Fatalf("ended with %v (%s), reference %s", got.end, k, want.end)
		}
	})
}

// decoded is what the reference decoder expects of a raw stream.
type decoded struct {
	acceptErr bool
	helloLess bool
	hello     flow.Hello
	payload   []byte
	controls  []flow.Control
	end       string // as endKind names it
}

// referenceDecode decodes a whole stream the way docs/PROTOCOL.md describes
// it, independently of tcp.go.
func referenceDecode(raw []byte) decoded {
	const prefix = flow.TCPHelloPrefix
	n := min(len(raw), len(prefix))
	if !bytes.Equal(raw[:n], []byte(prefix[:n])) || len(raw) < len(prefix) {
		// Not a hello (or a stream too short to hold its prefix).
		return decoded{helloLess: true, payload: raw, end: "eof"}
	}
	line := raw[:min(len(raw), flow.MaxHelloSize)]
	nl := bytes.IndexByte(line, '\n')
	if nl < 0 {
		return decoded{acceptErr: true} // too long, or cut off
	}
	h, err := flow.ParseHello(raw[len(prefix):nl])
	if err != nil {
		return decoded{acceptErr: true}
	}
	d := decoded{hello: h}
	rest := raw[nl+1:]
	for {
		if len(rest) == 0 {
			d.end = "eof"
			return d
		}
		if len(rest) < 5 {
			d.end = "truncated"
			return d
		}
		typ, size := rest[0], int(binary.BigEndian.Uint32(rest[1:5]))
		body := rest[5:]
		switch typ {
		case 'D':
			if size > flow.MaxPayloadSize {
				d.end = "protocol"
				return d
			}
			if len(body) < size {
				d.payload = append(d.payload, body...)
				d.end = "truncated"
				return d
			}
			d.payload = append(d.payload, body[:size]...)
		case 'C':
			if size > flow.MaxControlSize {
				d.end = "protocol"
				return d
			}
			if len(body) < size {
				d.end = "truncated"
				return d
			}
			c, err := flow.ParseControl(body[:size])
			if err != nil {
				d.end = "protocol"
				return d
			}
			d.controls = append(d.controls, c)
		default:
			d.end = "protocol"
			return d
		}
		rest = body[size:]
	}
}
