package netlab

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// lineDepth is how many packets one direction of a delay line holds, and
// lineBytes how many bytes: at 1 Gbit/s and 50 ms one way about 6 MB are
// on the line; a packet beyond either is dropped, as a router's full
// queue would.
const (
	lineDepth = 16384
	lineBytes = 64 << 20
)

// bigPacket is the most one read of an offloading device gives: a 64 KiB
// TCP segment and its virtio_net_hdr. smallPacket holds an MTU-sized
// packet (or an ack): a packet that fits is copied out of the read
// buffer, so a line full of acks does not hold 64 KiB for each.
const (
	bigPacket   = 65536 + vnetHdrLen + 256
	smallPacket = 2048
)

// packet is one IP packet in the line and when it is due out.
type packet struct {
	due time.Time
	buf []byte
}

// DelayLine moves IP packets between two TUN devices of a wire, each held
// for the one-way delay and dropped with the loss probability: a packet
// level line, so TCP stays end to end between the hosts (a proxy would end
// TCP and be a hop itself).
type DelayLine struct {
	a, b       *os.File
	oneWay     time.Duration
	loss       float64
	big, small sync.Pool
	wg         sync.WaitGroup
	Packets    atomic.Uint64 // forwarded, both directions (a TSO segment counts once)
	Dropped    atomic.Uint64 // lost on purpose or beyond lineDepth or lineBytes
	// LateNanos sums how much later than due the packets went into the
	// other device: the line's own error (a busy machine's scheduling).
	LateNanos atomic.Int64
}

// startDelayLine forwards a->b and b->a until Close.
func startDelayLine(a, b *os.File, oneWay time.Duration, loss float64) *DelayLine {
	d := &DelayLine{a: a, b: b, oneWay: oneWay, loss: loss}
	d.big.New = func() any { return make([]byte, bigPacket) }
	d.small.New = func() any { return make([]byte, smallPacket) }
	for _, dir := range [][2]*os.File{{a, b}, {b, a}} {
		ch := make(chan packet, lineDepth)
		queued := new(atomic.Int64)
		d.wg.Add(2)
		go d.read(dir[0], ch, queued)
		go d.write(dir[1], ch, queued)
	}
	return d
}

// read takes packets off one device, stamps them with their due time and
// queues them; a closed device ends it and, through the closed channel,
// its writer.
func (d *DelayLine) read(from *os.File, ch chan<- packet, queued *atomic.Int64) {
	defer d.wg.Done()
	defer close(ch)
	buf := d.big.Get().([]byte)
	for {
		n, err := from.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // a transient error (a device going down): keep the line
		}
		if (d.loss > 0 && rand.Float64() < d.loss) || queued.Load()+int64(n) > lineBytes {
			d.Dropped.Add(1)
			continue
		}
		p := packet{due: time.Now().Add(d.oneWay)}
		if n <= smallPacket {
			p.buf = d.small.Get().([]byte)[:n]
			copy(p.buf, buf)
		} else {
			p.buf, buf = buf[:n], d.big.Get().([]byte)
		}
		select {
		case ch <- p:
			queued.Add(int64(n))
		default:
			d.Dropped.Add(1)
			d.put(p.buf)
		}
	}
}

// put returns a packet's buffer to its pool.
func (d *DelayLine) put(buf []byte) {
	if cap(buf) == smallPacket {
		d.small.Put(buf[:smallPacket])
	} else {
		d.big.Put(buf[:cap(buf)])
	}
}

// write sends each packet into the other device once it is due; the delay
// is the same for every packet, so the queue is in due order. A packet due
// within the slack goes at once: packets come close together, and a timer
// wake-up for each would cost the line more CPU than the packets.
func (d *DelayLine) write(to *os.File, ch <-chan packet, queued *atomic.Int64) {
	defer d.wg.Done()
	slack := min(100*time.Microsecond, d.oneWay/20)
	for p := range ch {
		if wait := time.Until(p.due); wait > slack {
			time.Sleep(wait)
		}
		to.Write(p.buf)
		d.LateNanos.Add(int64(max(time.Since(p.due), 0)))
		queued.Add(-int64(len(p.buf)))
		d.Packets.Add(1)
		d.put(p.buf)
	}
}

// Close closes both devices (which removes them) and waits for the line's
// goroutines.
func (d *DelayLine) Close() {
	d.a.Close()
	d.b.Close()
	d.wg.Wait()
}
