package flow

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCloseReason: a close reason is at most maxCloseReason bytes of valid
// UTF-8, cut at a character boundary, whatever the error quotes.
func TestCloseReason(t *testing.T) {
	long := strings.Repeat("a", maxCloseReason)
	cases := []struct {
		name string
		in   string
		want string
	}{
		// Short and valid: unchanged.
		{"short", "peer went away", "peer went away"},
		// Exactly the limit: unchanged.
		{"at the limit", long, long},
		// One byte over: cut to the limit.
		{"one byte over", long + "b", long},
		// A two-byte character (é) straddling the cut: it goes whole.
		{"multi-byte at the cut", long[:maxCloseReason-1] + "é" + "tail", long[:maxCloseReason-1]},
		// A three-byte character (€) ending exactly at the limit: it stays.
		{"multi-byte ending at the limit", long[:maxCloseReason-3] + "€" + "tail", long[:maxCloseReason-3] + "€"},
		// A four-byte character (𝄞) one byte into the cut: it goes whole.
		{"four-byte at the cut", long[:maxCloseReason-1] + "𝄞", long[:maxCloseReason-1]},
		// Invalid UTF-8 a peer sent: the reason ends before it.
		{"invalid byte", "bad hello \"\xff\xfe\"", "bad hello \""},
		// A real U+FFFD is valid and stays.
		{"replacement character", "got \uFFFD here", "got \uFFFD here"},
		{"empty", "", ""},
	}
	for _, c := range cases {
		got := closeReason(c.in)
		if got != c.want || len(got) > 123 || !utf8.ValidString(got) {
			t.Errorf("%s: closeReason(%q) = %q (%d bytes), want %q", c.name, c.in, got, len(got), c.want)
		}
	}
}
