package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// samples is a scraped /metrics page.
type samples []sample

// sum adds every sample of the metric name whose labels include match
// (nil: all), and reports whether there was any.
func (ss samples) sum(name string, match map[string]string) (float64, bool) {
	var total float64
	found := false
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
		found = true
	}
	return total, found
}

// names returns the distinct metric names with the prefix, in page order.
func (ss samples) names(prefix string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if strings.HasPrefix(s.name, prefix) && !seen[s.name] {
			seen[s.name] = true
			out = append(out, s.name)
		}
	}
	return out
}

// scrape fetches and parses a /metrics page in the Prometheus text format.
func scrape(ctx context.Context, url string) (samples, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Ask for the text format: HAProxy and client_golang both serve it.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := labHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %s", url, resp.Status)
	}
	return parseText(resp.Body)
}

// parseText reads the Prometheus text exposition format: enough of it for
// counters, gauges and histogram sums with simple label values.
func parseText(r io.Reader) (samples, error) {
	var out samples
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("bad metrics line %q", line)
			}
			s.name = line[:i]
			parseLabels(line[i+1:j], s.labels)
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				return nil, fmt.Errorf("bad metrics line %q", line)
			}
			s.name, rest = f[0], f[1]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("bad metrics line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in metrics line %q", line)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `a="x",b="y"` into m. Label values with escaped quotes
// are kept as written.
func parseLabels(s string, m map[string]string) {
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return
		}
		key := strings.TrimSpace(strings.TrimLeft(s[:eq], ","))
		s = s[eq+1:]
		if !strings.HasPrefix(s, `"`) {
			return
		}
		end := 1
		for end < len(s) && (s[end] != '"' || s[end-1] == '\\') {
			end++
		}
		if end >= len(s) {
			return
		}
		m[key] = s[1:end]
		s = strings.TrimPrefix(s[end+1:], ",")
	}
}

// fetchText GETs url and returns its body.
func fetchText(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := labHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: status %s", url, resp.Status)
	}
	return string(b), nil
}
