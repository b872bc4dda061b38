package lab

import (
	"context"
	"sync"
	"time"
)

// pollInterval is how often the poller scrapes every endpoint of a run:
// as often as the binaries and bp-sockets sample the kernel (100 ms), so a
// snapshot taken while the path stands still has every sampler's figures
// from inside that stillness.
const pollInterval = 100 * time.Millisecond

// endpoint is one /metrics page the poller scrapes during a run.
type endpoint struct {
	key string // "bp-client", "bp-server", a hop's name, or a hop's name + socketsSuffix
	url string
}

// socketsSuffix marks the bp-sockets sidecar of a hop among the endpoints.
const socketsSuffix = "/sockets"

// snapshot is one round of scrapes: every endpoint's page, as near to the
// same moment as concurrent scrapes get. A page that failed is absent.
type snapshot struct {
	at    time.Duration // since the poller started
	pages map[string]samples
}

// poller scrapes the run's endpoints every pollInterval while the client
// runs, because the byte map needs the path's state at the moment the
// client first blocked, not at the end, when every queue has drained.
type poller struct {
	endpoints []endpoint
	mu        sync.Mutex
	snaps     []snapshot
	stop      context.CancelFunc
	done      chan struct{}
}

// startPoller scrapes the endpoints until stopped. Endpoints that do not
// answer yet (the client's, before it listens) are simply absent from a
// snapshot.
func startPoller(ctx context.Context, endpoints []endpoint) *poller {
	ctx, cancel := context.WithCancel(ctx)
	p := &poller{endpoints: endpoints, stop: cancel, done: make(chan struct{})}
	go p.loop(ctx)
	return p
}

func (p *poller) loop(ctx context.Context) {
	defer close(p.done)
	start := time.Now()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		s := p.round(ctx, time.Since(start))
		p.mu.Lock()
		p.snaps = append(p.snaps, s)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round scrapes every endpoint at once, so that the pages of one snapshot
// are milliseconds apart, not a whole round of sequential requests.
func (p *poller) round(ctx context.Context, at time.Duration) snapshot {
	s := snapshot{at: at, pages: map[string]samples{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, e := range p.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, pollInterval*5)
			defer cancel()
			if ss, err := scrape(ctx, e.url); err == nil {
				mu.Lock()
				s.pages[e.key] = ss
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return s
}

// finish stops the poller and returns its snapshots, oldest first.
func (p *poller) finish() []snapshot {
	if p == nil {
		return nil
	}
	p.stop()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snaps
}
