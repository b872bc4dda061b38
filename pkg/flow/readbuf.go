package flow

import "sync"

// readBuffer is a session reader's buffer, sized by what the connection
// needs. A slow connection's reader (one small message a second) spends its
// life blocked in a read, holding its buffer: with a full read size each,
// 10,000 of them would hold 640 MiB for a few KiB of data. So a reader
// starts with a small buffer and takes a full-size one, from a pool that
// all connections share, as soon as a read fills the small one; after
// shrinkAfterReads reads in a row that the small buffer would have held, or
// when the session ends, the full-size buffer goes back to the pool.
//
// A read never asks for more than the read size. The first read after
// small ones may return fewer bytes than the read size would have (at most
// smallReadSize): one shorter read each time a connection speeds up.
type readBuffer struct {
	size        int     // the read size: the most bytes one read asks for
	small       []byte  // min(size, smallReadSize)
	full        *[]byte // from fullReadBuffers while the connection is fast
	smallInARow int
}

const (
	smallReadSize = 4 << 10
	// controlOnlyReadSize is the read buffer of a reader whose peer sends
	// no payload (see Session.readLoop).
	controlOnlyReadSize = 64
	shrinkAfterReads    = 64
)

// fullReadBuffers holds full-size read buffers (*[]byte) between uses.
var fullReadBuffers sync.Pool

func newReadBuffer(size int) *readBuffer {
	if size <= 0 {
		size = DefaultReadSize
	}
	return &readBuffer{size: size, small: make([]byte, min(size, smallReadSize))}
}

// next is the buffer for the next read.
func (b *readBuffer) next() []byte {
	if b.full != nil {
		return (*b.full)[:b.size]
	}
	return b.small
}

// used adapts the buffer to a read of n bytes into next().
func (b *readBuffer) used(n int) {
	if b.full == nil {
		if n == len(b.small) && b.size > len(b.small) {
			// More may be waiting: read at the full size from now on.
			if p, ok := fullReadBuffers.Get().(*[]byte); ok && cap(*p) >= b.size {
				b.full = p
			} else {
				full := make([]byte, b.size)
				b.full = &full
			}
			b.smallInARow = 0
		}
		return
	}
	if n > len(b.small) {
		b.smallInARow = 0
		return
	}
	if b.smallInARow++; b.smallInARow >= shrinkAfterReads {
		b.release()
	}
}

// release gives the full-size buffer back to the pool.
func (b *readBuffer) release() {
	if b.full != nil {
		fullReadBuffers.Put(b.full)
		b.full, b.smallInARow = nil, 0
	}
}
