package config

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The seed corpora live in testdata/fuzz/<target>/ (and the f.Add calls);
// `make fuzz` runs each target for a while, `make test` for a few seconds.

// FuzzParseSize: no input panics; an accepted size prints (String) as a
// text that parses back to the same size, and plain whole numbers are
// taken as bytes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"65536", "64KiB", "64kb", "1.5MiB", " 2 g ", "0", "-1", "1e3", "NaN", "Inf", "9e18", "kib", "", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		back, err := ParseSize(n.String())
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, prints %q, which parses to %d, %v", s, n, n.String(), back, err)
		}
		if i, ierr := strconv.ParseInt(strings.TrimSpace(s), 10, 64); ierr == nil && i < 1<<52 && i > -(1<<52) && int64(n) != i {
			t.Fatalf("ParseSize(%q) = %d, want %d bytes", s, n, i)
		}
	})
}

// fuzzSpec is a small settings struct with one field of every kind Load
// supports.
type fuzzSpec struct {
	Size  Size          `envconfig:"FZ_SIZE" flag:"fz-size" default:"64KiB" desc:"a size"`
	Delay time.Duration `envconfig:"FZ_DELAY" flag:"fz-delay" default:"1s" desc:"a duration"`
	Count int           `envconfig:"FZ_COUNT" flag:"fz-count" default:"3" desc:"a number"`
	Rate  float64       `envconfig:"FZ_RATE" flag:"fz-rate" default:"0.5" desc:"a float"`
	Name  string        `envconfig:"FZ_NAME" flag:"fz-name" default:"x" desc:"a string"`
	On    bool          `envconfig:"FZ_ON" flag:"fz-on" default:"false" desc:"a switch"`
}

var fuzzFlags = []string{"fz-size", "fz-delay", "fz-count", "fz-rate", "fz-name", "fz-on"}

// FuzzLoad: a value for any setting, given as a flag and (another one) in
// the environment, never panics; it is either refused with an *Error that
// names the setting and the value, or taken, with the flag winning.
func FuzzLoad(f *testing.F) {
	f.Add(uint8(0), "1MiB", "2MiB")
	f.Add(uint8(1), "250ms", "bogus")
	f.Add(uint8(2), "-7", "")
	f.Add(uint8(3), "1e400", "NaN")
	f.Add(uint8(4), "--", "\x00")
	f.Add(uint8(5), "maybe", "true")
	f.Fuzz(func(t *testing.T, which uint8, flagValue, envValue string) {
		name := fuzzFlags[int(which)%len(fuzzFlags)]
		if strings.ContainsRune(envValue, 0) {
			envValue = strings.ReplaceAll(envValue, "\x00", "")
		}
		t.Setenv(EnvName(name), envValue)
		var spec fuzzSpec
		_, err := Load("fuzz", "fuzz", &spec, []string{"--" + name + "=" + flagValue}, io.Discard)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("--%s=%q (env %q): error %v is no *Error", name, flagValue, envValue, err)
			}
			if ce.Flag != name || ce.Env != EnvName(name) || ce.Reason == "" {
				t.Fatalf("--%s=%q (env %q): error names %q/%q (%q), want %s", name, flagValue, envValue, ce.Flag, ce.Env, ce.Reason, name)
			}
			return
		}
		// The flag's value is what is in force.
		switch name {
		case "fz-size":
			want, _ := ParseSize(flagValue)
			if spec.Size != want {
				t.Fatalf("--fz-size=%q gave %d, want %d", flagValue, spec.Size, want)
			}
		case "fz-name":
			if spec.Name != flagValue {
				t.Fatalf("--fz-name=%q gave %q", flagValue, spec.Name)
			}
		case "fz-delay":
			want, _ := time.ParseDuration(flagValue)
			if spec.Delay != want {
				t.Fatalf("--fz-delay=%q gave %s, want %s", flagValue, spec.Delay, want)
			}
		}
	})
}
