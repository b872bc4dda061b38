package lab

import (
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// LinkResult is what the kernel measured on one link: the round trip of
// its sender's sockets (ss -tin: tcpi_rtt and tcpi_min_rtt), against what
// was asked.
type LinkResult struct {
	Name        string  `json:"name"`
	Setting     string  `json:"setting"` // in -link syntax
	AskedRTTMs  float64 `json:"asked_rtt_ms"`
	RTTMedianMs float64 `json:"rtt_median_ms"` // tcpi_rtt, smoothed, median of the samples
	RTTMinMs    float64 `json:"rtt_min_ms"`    // the least smoothed rtt seen
	MinRTTMs    float64 `json:"min_rtt_ms"`    // tcpi_min_rtt: the kernel's floor
	Samples     int     `json:"samples"`
	// MaxInFlightBytes is the most the sender had sent and not had
	// acknowledged in any snapshot: the bytes on the link.
	MaxInFlightBytes float64 `json:"max_in_flight_bytes"`
}

var (
	ssRTT    = regexp.MustCompile(`\brtt:([0-9.]+)/`)
	ssMinRTT = regexp.MustCompile(`\bminrtt:([0-9.]+)`)
)

// rttSampler reads, every rttPoll, the round trip of each link's sender
// sockets toward the link's far end, inside the sender's namespace.
type rttSampler struct {
	mu      sync.Mutex
	rtt     map[string][]float64
	minRTT  map[string]float64
	stop    context.CancelFunc
	done    chan struct{}
	targets []rttTarget
}

type rttTarget struct{ link, ns, dst string }

func (r *run) startRTT(ctx context.Context) *rttSampler {
	if r.net == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &rttSampler{rtt: map[string][]float64{}, minRTT: map[string]float64{}, stop: cancel, done: make(chan struct{})}
	for _, l := range r.net.Links {
		s.targets = append(s.targets, rttTarget{link: l.Name(), ns: r.net.NS(l.A), dst: r.net.Addr(l.B, l.A)})
	}
	go s.loop(ctx)
	return s
}

func (s *rttSampler) loop(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(rttPoll)
	defer tick.Stop()
	for {
		for _, t := range s.targets {
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", t.ns, "ss", "-tinH", "dst", t.dst).Output()
			if err != nil {
				continue
			}
			s.mu.Lock()
			for _, m := range ssRTT.FindAllStringSubmatch(string(out), -1) {
				if v, err := strconv.ParseFloat(m[1], 64); err == nil {
					s.rtt[t.link] = append(s.rtt[t.link], v)
				}
			}
			for _, m := range ssMinRTT.FindAllStringSubmatch(string(out), -1) {
				if v, err := strconv.ParseFloat(m[1], 64); err == nil && (s.minRTT[t.link] == 0 || v < s.minRTT[t.link]) {
					s.minRTT[t.link] = v
				}
			}
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// finish stops the sampler and returns each link's figures.
func (s *rttSampler) finish(r *run) []LinkResult {
	if s == nil {
		return nil
	}
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LinkResult
	for _, l := range r.net.Links {
		lr := LinkResult{Name: l.Name(), Setting: l.String(), AskedRTTMs: float64(l.RTT) / 1e6, MinRTTMs: s.minRTT[l.Name()]}
		if v := slices.Clone(s.rtt[l.Name()]); len(v) > 0 {
			slices.Sort(v)
			lr.RTTMedianMs, lr.RTTMinMs, lr.Samples = v[len(v)/2], v[0], len(v)
		}
		out = append(out, lr)
	}
	return out
}

// flight is where a link's sender shows its unacknowledged bytes: the
// client's own socket metrics, or a hop's bp-sockets on its upstream side.
type flight struct {
	link  string
	page  string            // endpoint key
	match map[string]string // labels of the sender's side
	hop   string            // the piece the in-flight bytes are part of
	place string
}

// flights are the run's links with their senders: the client sends on
// the first link, each hop on the link after it.
func (r *run) flights(hs []*hop) []flight {
	if r.net == nil {
		return nil
	}
	var out []flight
	for i, l := range r.net.Links {
		switch {
		case i == 0:
			out = append(out, flight{link: l.Name(), page: "bp-client", hop: "bp-client", place: "send queue"})
		case i <= len(hs) && hs[i-1].socketsURL != "":
			h := hs[i-1]
			out = append(out, flight{link: l.Name(), page: h.name + socketsSuffix,
				match: map[string]string{"side": "upstream"}, hop: h.name, place: "upstream send queue"})
		}
	}
	return out
}

// addFlights moves each link's bytes in flight out of its sender's send
// queue piece into a place of their own, right after it, and returns
// their sum: a receiver may already hold bytes its sender has not had
// acknowledged, so the map may count them twice by up to that much.
func addFlights(m *ByteMap, s snapshot, flights []flight) float64 {
	total := 0.0
	for _, f := range flights {
		page := s.pages[f.page]
		send, _ := page.sum("bp_socket_send_queue_bytes", f.match)
		unsent, ok := page.sum("bp_socket_unsent_bytes", f.match)
		if !ok {
			continue
		}
		inFlight := max(send-unsent, 0)
		for i, p := range m.Pieces {
			if p.Hop != f.hop || p.Place != f.place {
				continue
			}
			m.Pieces[i].Bytes -= inFlight
			m.Pieces[i].Source += ", minus the bytes in flight"
			m.Pieces = slices.Insert(m.Pieces, i+1, Piece{Hop: "link " + f.link, Place: "in flight", Bytes: inFlight, Measured: true,
				Source: "sender's bp_socket_send_queue_bytes - bp_socket_unsent_bytes (sent, not acknowledged)"})
			total += inFlight
			break
		}
	}
	return total
}

// maxInFlight is the most each link had in flight over the snapshots.
func maxInFlight(snaps []snapshot, flights []flight, links []LinkResult) {
	for i := range links {
		for _, f := range flights {
			if f.link != links[i].Name {
				continue
			}
			for _, s := range snaps {
				send, _ := s.pages[f.page].sum("bp_socket_send_queue_bytes", f.match)
				unsent, ok := s.pages[f.page].sum("bp_socket_unsent_bytes", f.match)
				if ok {
					links[i].MaxInFlightBytes = max(links[i].MaxInFlightBytes, send-unsent)
				}
			}
		}
	}
}
