package sockstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseNetstat(t *testing.T) {
	all := HasToZeroWindowAdv | HasFromZeroWindowAdv | HasWantZeroWindowAdv | HasZeroWindowDrop
	tests := []struct {
		file string
		want ZeroWindowCounters
	}{
		{
			// A real /proc/net/netstat (Linux 6.18): three sections, all four counters.
			"netstat-linux-6.18.txt",
			ZeroWindowCounters{ToZeroWindowAdv: 1, FromZeroWindowAdv: 1, WantZeroWindowAdv: 0, ZeroWindowDrop: 0, Present: all},
		},
		{
			// Trimmed by hand: no TCPWantZeroWindowAdv, so it must be absent, not zero;
			// a value above 2^32 must survive.
			"netstat-no-want.txt",
			ZeroWindowCounters{ToZeroWindowAdv: 41, FromZeroWindowAdv: 40, ZeroWindowDrop: 5000000000,
				Present: HasToZeroWindowAdv | HasFromZeroWindowAdv | HasZeroWindowDrop},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseNetstat(openFixture(t, tt.file))
			if err != nil {
				t.Fatalf("ParseNetstat: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseNetstat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseNetstatMalformed(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
	}{
		{"malformed-count.txt", "parse netstat: TcpExt: has 5 names and 4 values"},                                             // a value missing
		{"malformed-value.txt", `parse netstat: TcpExt: TCPToZeroWindowAdv: strconv.ParseUint: parsing "x12": invalid syntax`}, // not a number
		{"malformed-negative.txt", `parse netstat: TcpExt: TCPToZeroWindowAdv: strconv.ParseUint: parsing "-1": invalid syntax`},
		{"malformed-missing-values.txt", `parse netstat: TcpExt: header followed by "IpExt: InNoRoutes InOctets"`}, // header, then the next section's header
		{"malformed-truncated.txt", "parse netstat: TcpExt: header without value line"},                            // file cut after a header
		{"malformed-no-tcpext.txt", "parse netstat: no TcpExt: section"},                                           // wrong file
		{"malformed-twice.txt", "parse netstat: TcpExt: appears twice"},                                            // ambiguous
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := ParseNetstat(openFixture(t, tt.file))
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseNetstat error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseNetstatNoZeroWindowCounters(t *testing.T) {
	// An old kernel with a TcpExt section but none of the counters: no error,
	// nothing present.
	got, err := ParseNetstat(strings.NewReader("TcpExt: SyncookiesSent DelayedACKs\nTcpExt: 1 2\n"))
	if err != nil {
		t.Fatalf("ParseNetstat: %v", err)
	}
	if got != (ZeroWindowCounters{}) {
		t.Errorf("ParseNetstat = %+v, want nothing present", got)
	}
}

func openFixture(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
