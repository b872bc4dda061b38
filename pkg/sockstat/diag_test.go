package sockstat

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint16
		bad  string
	}{
		{"", nil, ""},
		{"8080", []uint16{8080}, ""},
		{" 80, 443 ,80,", []uint16{80, 443}, ""},
		{"65535,1", []uint16{65535, 1}, ""},
		{"80,http", nil, `"http" is not a port`},
		{"0", nil, `"0" is not a port`},
		{"65536", nil, `"65536" is not a port`},
		{"-1", nil, `"-1" is not a port`},
		{"80:90", nil, `"80:90" is not a port`},
	} {
		got, err := ParsePorts(tc.in)
		switch {
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("ParsePorts(%q): err %v, want %q", tc.in, err, tc.bad)
		case tc.bad == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("ParsePorts(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
