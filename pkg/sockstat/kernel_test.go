package sockstat

import "testing"

func TestParseKernelRelease(t *testing.T) {
	tests := []struct {
		release      string
		major, minor int
		wantErr      bool
	}{
		{"6.1.0-18-amd64", 6, 1, false},                      // Debian 12
		{"5.4.0-xyz", 5, 4, false},                           // arbitrary suffix after the minor number
		{"6.2.0", 6, 2, false},                               // plain three-part release
		{"6.2", 6, 2, false},                                 // no patch level
		{"3.10.0-1160.el7.x86_64", 3, 10, false},             // RHEL 7: two-digit minor
		{"5.15.153.1-microsoft-standard-WSL2", 5, 15, false}, // WSL2: four parts
		{"6.18.44-fc-v595", 6, 18, false},                    // Firecracker guest
		{"4.9.0+", 4, 9, false},                              // locally built, "+" suffix
		{"", 0, 0, true},                                     // empty
		{"garbage", 0, 0, true},                              // no number at all
		{"6", 0, 0, true},                                    // no minor
		{"6.", 0, 0, true},                                   // dot but no minor
		{"6.x", 0, 0, true},                                  // minor not a number
		{".1", 0, 0, true},                                   // no major
		{"v6.1", 0, 0, true},                                 // prefix before the major
		{"-1.2", 0, 0, true},                                 // negative major
		{"99999999999999999999.1", 0, 0, true},               // major overflows int
	}
	for _, tt := range tests {
		major, minor, err := ParseKernelRelease(tt.release)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseKernelRelease(%q) error = %v, want error %v", tt.release, err, tt.wantErr)
			continue
		}
		if major != tt.major || minor != tt.minor {
			t.Errorf("ParseKernelRelease(%q) = %d.%d, want %d.%d", tt.release, major, minor, tt.major, tt.minor)
		}
	}
}

func TestFieldsForKernel(t *testing.T) {
	base := FieldBasic | FieldSendQueue | FieldSendQueueNotSent | FieldRecvQueue
	tests := []struct {
		major, minor int
		want         Fields
	}{
		{3, 2, base},                                                      // oldest kernel Go supports: only the basics and the queues
		{4, 5, base},                                                      // just before notsent_bytes
		{4, 6, base | FieldNotSentBytes},                                  // notsent_bytes arrives
		{4, 9, base | FieldNotSentBytes},                                  // Debian 9: lacks the limited counters
		{4, 10, base | FieldNotSentBytes | FieldLimited},                  // busy/rwnd_limited/sndbuf_limited arrive
		{4, 19, base | FieldNotSentBytes | FieldLimited},                  // Debian 10: no peer window yet
		{5, 3, base | FieldNotSentBytes | FieldLimited},                   // just before snd_wnd
		{5, 4, base | FieldNotSentBytes | FieldLimited | FieldPeerWindow}, // snd_wnd arrives
		{6, 1, base | FieldNotSentBytes | FieldLimited | FieldPeerWindow}, // Debian 12: no own window yet
		{6, 2, AllFields},                                                 // rcv_wnd arrives: everything
		{6, 18, AllFields},                                                // minor above the threshold compares as a number, not text
		{7, 0, AllFields},                                                 // later major
		{10, 1, AllFields},                                                // two-digit major
		{0, 0, base},                                                      // unparsable release falls back to the basics
	}
	for _, tt := range tests {
		if got := FieldsForKernel(tt.major, tt.minor); got != tt.want {
			t.Errorf("FieldsForKernel(%d, %d) = %s, want %s", tt.major, tt.minor, got, tt.want)
		}
	}
}

func TestFieldsString(t *testing.T) {
	tests := []struct {
		fields Fields
		want   string
	}{
		{0, "none"}, // nothing
		{FieldPeerWindow | FieldOwnWindow, "peer window snd_wnd (Linux >= 5.4), own window rcv_wnd (Linux >= 6.2)"}, // in bit order
	}
	for _, tt := range tests {
		if got := tt.fields.String(); got != tt.want {
			t.Errorf("Fields(%#x).String() = %q, want %q", uint32(tt.fields), got, tt.want)
		}
	}
}
