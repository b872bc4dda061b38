package netlab

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// lineDepth is how many packets one direction of a delay line holds: at
// 1 Gbit/s of 1500-byte packets and 50 ms one way, about 4200; a packet
// beyond it is dropped, as a router's full queue would.
const lineDepth = 16384

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
	a, b    *os.File
	oneWay  time.Duration
	loss    float64
	pool    sync.Pool
	wg      sync.WaitGroup
	Packets atomic.Uint64 // forwarded, both directions
	Dropped atomic.Uint64 // lost on purpose or beyond lineDepth
}

// startDelayLine forwards a->b and b->a until Close.
func startDelayLine(a, b *os.File, oneWay time.Duration, loss float64, mtu int) *DelayLine {
	d := &DelayLine{a: a, b: b, oneWay: oneWay, loss: loss}
	d.pool.New = func() any { return make([]byte, mtu+64) }
	for _, dir := range [][2]*os.File{{a, b}, {b, a}} {
		ch := make(chan packet, lineDepth)
		d.wg.Add(2)
		go d.read(dir[0], ch)
		go d.write(dir[1], ch)
	}
	return d
}

// read takes packets off one device, stamps them with their due time and
// queues them; a closed device ends it and, through the closed channel,
// its writer.
func (d *DelayLine) read(from *os.File, ch chan<- packet) {
	defer d.wg.Done()
	defer close(ch)
	for {
		buf := d.pool.Get().([]byte)
		n, err := from.Read(buf[:cap(buf)])
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // a transient error (a device going down): keep the line
		}
		if d.loss > 0 && rand.Float64() < d.loss {
			d.Dropped.Add(1)
			d.pool.Put(buf)
			continue
		}
		select {
		case ch <- packet{due: time.Now().Add(d.oneWay), buf: buf[:n]}:
		default:
			d.Dropped.Add(1)
			d.pool.Put(buf)
		}
	}
}

// write sends each packet into the other device once it is due; the delay
// is the same for every packet, so the queue is in due order. A packet due
// within the slack goes at once: at 1 Gbit/s packets are 12 µs apart, and
// a timer wake-up for each would cost the line more CPU than the packets.
func (d *DelayLine) write(to *os.File, ch <-chan packet) {
	defer d.wg.Done()
	slack := min(100*time.Microsecond, d.oneWay/20)
	for p := range ch {
		if wait := time.Until(p.due); wait > slack {
			time.Sleep(wait)
		}
		to.Write(p.buf)
		d.Packets.Add(1)
		d.pool.Put(p.buf[:cap(p.buf)])
	}
}

// Close closes both devices (which removes them) and waits for the line's
// goroutines.
func (d *DelayLine) Close() {
	d.a.Close()
	d.b.Close()
	d.wg.Wait()
}
