package admission_test

import (
	"net/http/httptest"
	"testing"

	"github.com/go-backpressure/go-backpressure/pkg/admission"
)

func TestConnLimit(t *testing.T) {
	l := admission.NewConnLimit(2)
	if !l.Acquire() || !l.Acquire() || l.Acquire() || l.Open() != 2 {
		t.Fatalf("limit 2: open %d after three tries, want two admitted and the third refused", l.Open())
	}
	l.Release()
	if !l.Acquire() {
		t.Error("a released place was not given again")
	}
	var none admission.ConnLimit // the zero value admits everyone and counts
	for range 100 {
		if !none.Acquire() {
			t.Fatal("zero limit refused")
		}
	}
	if none.Open() != 100 || none.Max() != 0 {
		t.Errorf("zero limit: open %d max %d, want 100 and 0", none.Open(), none.Max())
	}
}

func TestOriginPolicy(t *testing.T) {
	cases := []struct {
		list, origin, host string
		want               bool
	}{
		// No Origin header: not a browser, always allowed.
		{"", "", "lab:8080", true},
		// Same origin, whatever the list.
		{"", "http://lab:8080", "lab:8080", true},
		// Another origin: only when listed (case-insensitive), or with *.
		{"", "http://evil.example", "lab:8080", false},
		{"https://Dash.example", "https://dash.example", "lab:8080", true},
		{"https://dash.example", "http://dash.example", "lab:8080", false},
		{"*", "http://evil.example", "lab:8080", true},
		// A sandboxed or file:// page.
		{"", "null", "lab:8080", false},
	}
	for _, c := range cases {
		p, err := admission.ParseOriginPolicy(c.list)
		if err != nil {
			t.Fatalf("%q: %v", c.list, err)
		}
		r := httptest.NewRequest("GET", "http://"+c.host+"/ws", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if got := p.Allowed(r); got != c.want {
			t.Errorf("list %q, origin %q: allowed %v, want %v", c.list, c.origin, got, c.want)
		}
	}
	for _, bad := range []string{"example.com", "ftp://x", "https://x/path", "https://u@x"} {
		if _, err := admission.ParseOriginPolicy(bad); err == nil {
			t.Errorf("%q: no error, want one", bad)
		}
	}
}
