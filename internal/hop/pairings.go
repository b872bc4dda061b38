package hop

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
)

// pairings are streams that wait, by an id the server drew, for a sibling
// stream to name them: a browser's upload names its ack stream
// (h2acks.go), a download's ack stream names its download (h2down.go).
// The zero value is ready.
type pairings[T any] struct {
	mu        sync.Mutex
	byID      map[string]*pairing[T]
	unclaimed int
}

// pairing is one stream waiting for its sibling, or joined to it.
type pairing[T any] struct {
	value   T
	claimed chan struct{} // closed when the sibling claims it
	taken   bool
}

// open registers value under a new id; false when the unclaimed ones are
// at their bound (maxUnclaimedAckStreams).
func (p *pairings[T]) open(value T) (string, *pairing[T], bool) {
	b := make([]byte, ackIDBytes)
	rand.Read(b) // never fails (crypto/rand)
	id := hex.EncodeToString(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unclaimed >= maxUnclaimedAckStreams {
		return "", nil, false
	}
	if p.byID == nil {
		p.byID = map[string]*pairing[T]{}
	}
	e := &pairing[T]{value: value, claimed: make(chan struct{})}
	p.byID[id] = e
	p.unclaimed++
	return id, e, true
}

// claim takes the pairing id for a sibling, running join on its value
// before the waiter learns of it; else it returns the HTTP status that
// says why not: 400 a malformed id, 404 an unknown one, 409 one claimed
// already.
func (p *pairings[T]) claim(id string, join func(T)) (T, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.byID[id]
	var zero T
	switch {
	case len(id) != 2*ackIDBytes:
		return zero, http.StatusBadRequest
	case e == nil:
		return zero, http.StatusNotFound
	case e.taken:
		return zero, http.StatusConflict
	}
	e.taken = true
	p.unclaimed--
	if join != nil {
		join(e.value)
	}
	close(e.claimed)
	return e.value, 0
}

// expire removes an unclaimed pairing; false when a sibling claimed it
// meanwhile.
func (p *pairings[T]) expire(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byID[id].taken {
		return false
	}
	delete(p.byID, id)
	p.unclaimed--
	return true
}

// remove forgets a claimed pairing whose streams ended.
func (p *pairings[T]) remove(id string) {
	p.mu.Lock()
	delete(p.byID, id)
	p.mu.Unlock()
}
