package verdict

import (
	"testing"
	"time"
)

// TestPlaceStop: the stop is exact in bytes (the last ack's count), placed
// in time by the rate the server read at, and the bytes written then never
// fall below the bytes read.
func TestPlaceStop(t *testing.T) {
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	tests := []struct {
		name       string
		hist       []ackPoint // latest first
		iv         time.Duration
		at, within time.Duration
		written    int64
	}{
		{
			// A steady reader (1 MB per 100 ms) that stopped half way
			// between two acks: the last one carries half an interval's
			// bytes, so the stop is at 150 ms, not an interval before.
			name: "half an interval", iv: ms(100),
			hist: []ackPoint{{ms(200), 1500 * kb, 2600 * kb}, {ms(100), 1000 * kb, 2000 * kb}, {0, 0, 1000 * kb}},
			at:   ms(150), within: ms(100), written: 2300 * kb,
		},
		{
			// Full speed, acks by bytes: 1 MB a millisecond until the
			// stop, then the tick ack 100 ms later, by when the writer
			// had filled 33 MB more of the path. The written count at
			// the stop comes from the acks around it, not from one
			// interval before the last ack (which was 100 MB earlier).
			name: "full speed", iv: ms(1),
			hist: []ackPoint{{ms(200), 101500 * kb, 140 * mb}, {us(101000), 101 * mb, 105 * mb}, {ms(100), 100 * mb, 104 * mb}},
			at:   us(101500), within: ms(99), written: 105*mb + 176767,
		},
		{
			// The interpolated written count is below what was read:
			// it is at least the bytes read.
			name: "never below read", iv: ms(100),
			hist: []ackPoint{{ms(200), 2 * mb, 2 * mb}, {ms(100), 1 * mb, 1 * mb}},
			at:   ms(100), within: ms(100), written: 2 * mb,
		},
		{
			// A single ack: an interval before it, the bytes read the
			// least written.
			name: "one ack", iv: ms(100),
			hist: []ackPoint{{ms(300), 5 * mb, 6 * mb}},
			at:   ms(200), within: ms(100), written: 5 * mb,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, written, within := placeStop(tt.hist, tt.iv)
			if at != tt.at || within != tt.within {
				t.Errorf("at %v within %v, want %v within %v", at, within, tt.at, tt.within)
			}
			eqInt(t, "written", written, tt.written)
		})
	}
}
