package flow

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// ErrPayloadMemory refuses a run whose payload buffer would take the
// payload memory (PayloadPool) past its bound (reason payload_memory,
// WebSocket close code 1013, try again later).
var ErrPayloadMemory = errors.New("payload memory exhausted")

// minPayloadClass is the smallest payload buffer lent: smaller payloads
// share one of this size.
const minPayloadClass = 64 << 10

// payloadClasses is the number of size classes, powers of two from
// minPayloadClass to MaxPayloadSize.
const payloadClasses = 9 // 64 KiB .. 16 MiB

// PayloadPool lends the payload buffers writers send, within a bound on
// the memory they take together. A payload is read-only and the same bytes
// for every write, so runs whose payload sizes fall in the same size class
// (a power of two, at least 64 KiB) share one buffer, sliced to each run's
// size: a peer's hello decides how large its payload is, but not how many
// buffers exist (at most one per class, 9 in all, under 32 MiB together).
// A buffer no run uses is let go (a sync.Pool keeps it for reuse until the
// next garbage collection). A run whose class has no buffer yet, and whose
// buffer would not fit in the bound, is refused with ErrPayloadMemory.
//
// It is safe for concurrent use.
type PayloadPool struct {
	mu   sync.Mutex
	max  int64
	used int64
	live [payloadClasses]*payloadBuffer
	free [payloadClasses]sync.Pool // *[]byte, filled, of the class's size
}

// payloadBuffer is one class's buffer and the runs using it.
type payloadBuffer struct {
	buf  []byte
	refs int
}

// NewPayloadPool returns a pool that lends at most max bytes of payload
// buffers at once.
func NewPayloadPool(max int64) *PayloadPool { return &PayloadPool{max: max} }

// Used is the bytes of payload buffers lent now.
func (p *PayloadPool) Used() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}

// payloadClass is the class index and buffer size for a payload of size
// bytes (1 ..MaxPayloadSize).
func payloadClass(size int) (int, int) {
	c := 0
	if size > minPayloadClass {
		c = bits.Len(uint(size-1)) - bits.Len(uint(minPayloadClass-1))
	}
	return c, minPayloadClass << c
}

// Get lends a payload of size bytes (1 .. MaxPayloadSize) and the function
// that gives it back, to call once when the run ends.
func (p *PayloadPool) Get(size int) ([]byte, func(), error) {
	if size <= 0 || size > MaxPayloadSize {
		return nil, nil, fmt.Errorf("payload size %d out of range 1..%d", size, MaxPayloadSize)
	}
	c, csize := payloadClass(size)
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.live[c]
	if b == nil {
		if p.used+int64(csize) > p.max {
			return nil, nil, fmt.Errorf("%w: a %d-byte payload needs a %d-byte buffer, %d of %d bytes in use (--payload-memory)",
				ErrPayloadMemory, size, csize, p.used, p.max)
		}
		b = &payloadBuffer{buf: p.newBuffer(c, csize)}
		p.live[c] = b
		p.used += int64(csize)
	}
	b.refs++
	var once sync.Once
	return b.buf[:size], func() { once.Do(func() { p.put(c, b) }) }, nil
}

// put gives one run's use of class c's buffer b back.
func (p *PayloadPool) put(c int, b *payloadBuffer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.refs--; b.refs > 0 {
		return
	}
	p.live[c] = nil
	p.used -= int64(len(b.buf))
	p.free[c].Put(&b.buf)
}

// newBuffer is a filled buffer of class c: one kept from before, or new.
func (p *PayloadPool) newBuffer(c, csize int) []byte {
	if kept, ok := p.free[c].Get().(*[]byte); ok {
		return *kept
	}
	return bytes.Repeat([]byte("backpressure "), csize/13+1)[:csize]
}
