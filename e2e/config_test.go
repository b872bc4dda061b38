package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runBinary runs a binary to its end (at most 30 s) with env and args as
// given (no defaults added) and returns stdout, stderr and the exit status.
func runBinary(t *testing.T, name string, env []string, args ...string) (string, string, int) {
	t.Helper()
	p := startProc(t, name, env, args...)
	code := p.Wait(t, 30*time.Second)
	return p.Stdout(), p.Stderr(), code
}

// TestBadSettings: every bad setting stops the binary at start with exit
// status 2 and a message naming the setting and the value.
func TestBadSettings(t *testing.T) {
	t.Parallel()
	// A target that would be reachable never matters: the binaries must
	// refuse before connecting or listening.
	cases := []struct {
		name string
		bin  string
		env  []string
		args []string
		want []string // substrings of stderr
	}{
		// Payload size 0 would write nothing forever.
		{"payload size 0", "bp-client", nil, []string{"--payload-size", "0"}, []string{"--payload-size", `"0"`}},
		// Above the protocol's 16 MiB message limit.
		{"payload size too big", "bp-client", nil, []string{"--payload-size", "17MiB"}, []string{"--payload-size", "17MiB"}},
		// http is not a transport the client speaks.
		{"unknown URL scheme", "bp-client", nil, []string{"--target", "http://127.0.0.1:1/ws"}, []string{"--target", "http://127.0.0.1:1/ws", "scheme"}},
		// tcp:// needs a port.
		{"tcp target without port", "bp-client", nil, []string{"--target", "tcp://127.0.0.1"}, []string{"--target", "tcp://127.0.0.1"}},
		// A negative message rate means nothing.
		{"negative rate", "bp-client", nil, []string{"--rate", "-1"}, []string{"--rate", `"-1"`}},
		// A negative read rate on the server, by its env var.
		{"negative read rate env", "bp-server", []string{"BP_READ_RATE=-5"}, nil, []string{"--read-rate", "BP_READ_RATE", `"-5"`}},
		// "10x" is no duration.
		{"unparsable duration", "bp-client", nil, []string{"--duration", "10x"}, []string{"--duration", `"10x"`}},
		// The same on the server's pause schedule.
		{"unparsable pause", "bp-server", nil, []string{"--pause-for", "soon"}, []string{"--pause-for", `"soon"`}},
		// A unit the size parser does not know.
		{"bad size string", "bp-client", nil, []string{"--sndbuf", "12XB"}, []string{"--sndbuf", `"12XB"`}},
		// A size that is not a number at all, on the server.
		{"bad size server", "bp-server", nil, []string{"--rcvbuf", "lots"}, []string{"--rcvbuf", `"lots"`}},
		// Only up, down and both exist.
		{"bad direction", "bp-client", nil, []string{"--direction", "sideways"}, []string{"--direction", `"sideways"`}},
		// A bad environment variable is named by its variable too.
		{"bad env var", "bp-server", []string{"BP_READ_SIZE=abc"}, nil, []string{"BP_READ_SIZE", `"abc"`, "read-size"}},
		// The same variable on the client, which reads too (down).
		{"bad env var client", "bp-client", []string{"BP_READ_SIZE=abc"}, nil, []string{"BP_READ_SIZE", `"abc"`}},
		// A bad duration in the environment.
		{"bad env duration", "bp-client", []string{"BP_DURATION=forever"}, nil, []string{"BP_DURATION", `"forever"`}},
		// Repeating a pause more often than it lasts never resumes reading.
		{"pause every too short", "bp-server", nil, []string{"--pause-for", "2s", "--pause-every", "1s"}, []string{"--pause-every", `"1s"`}},
		// Neither a count nor a duration: the run would never end.
		{"unbounded run", "bp-client", nil, []string{"--count", "0", "--duration", "0"}, []string{"--duration"}},
		// An unknown log format.
		{"bad log format", "bp-server", nil, []string{"--log-format", "xml"}, []string{"--log-format", `"xml"`}},
		// An unknown report format.
		{"bad output", "bp-client", nil, []string{"--output", "yaml"}, []string{"--output", `"yaml"`}},
		// A flag that does not exist.
		{"unknown flag", "bp-client", nil, []string{"--speed", "9"}, []string{"speed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The server's listeners are made harmless should it ever start.
			args := tc.args
			if tc.bin == "bp-server" {
				args = append([]string{"--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--grpc-addr", ""}, args...)
			} else {
				args = append([]string{"--metrics-addr", "", "--target", "tcp://127.0.0.1:1"}, args...)
			}
			_, stderr, code := runBinary(t, tc.bin, tc.env, args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not name %s:\n%s", w, stderr)
				}
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
				t.Errorf("want a one-line message, got %d lines:\n%s", n+1, stderr)
			}
		})
	}
}

// TestSettingPrecedence: a flag beats the environment, which beats the
// default. The server logs its reading settings when it listens.
func TestSettingPrecedence(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  []string
		args []string
		want float64 // read_size in the listening log
	}{
		// Nothing given: the default, 64 KiB.
		{"default", nil, nil, 65536},
		// The environment beats the default.
		{"env", []string{"BP_READ_SIZE=1000"}, nil, 1000},
		// A flag beats the environment.
		{"flag over env", []string{"BP_READ_SIZE=1000"}, []string{"--read-size", "2KiB"}, 2048},
		// A flag alone.
		{"flag", nil, []string{"--read-size", "3000"}, 3000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServerEnv(t, tc.env, tc.args...)
			l := srv.Logs("bp-server listening")[0]
			if got := logNumber(t, l["read_size"]); got != tc.want {
				t.Errorf("read_size = %v, want %v (log %v)", l["read_size"], tc.want, l)
			}
		})
	}
}

// logNumber reads a size from a JSON log field, written as a number or a
// string ("64KiB" or "65536").
func logNumber(t *testing.T, v any) float64 {
	t.Helper()
	switch x := v.(type) {
	case float64:
		return x
	case string:
		m := regexp.MustCompile(`^(\d+)(KiB|MiB)?$`).FindStringSubmatch(x)
		if m == nil {
			t.Fatalf("cannot read %q as a size", x)
		}
		n, _ := strconv.ParseFloat(m[1], 64)
		switch m[2] {
		case "KiB":
			n *= 1 << 10
		case "MiB":
			n *= 1 << 20
		}
		return n
	}
	t.Fatalf("log field %v (%T) is not a size", v, v)
	return 0
}

// TestPORT: Cloud Foundry's PORT sets the server's HTTP listener and the
// client's metrics listener, unless the flag is given.
func TestPORT(t *testing.T) {
	t.Parallel()
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		port := freePort(t)
		p := startProc(t, "bp-server", []string{fmt.Sprintf("PORT=%d", port), "BP_HTTP_ADDR=127.0.0.1:0"},
			"--tcp-addr", "", "--grpc-addr", "", "--log-format", "json")
		l := p.WaitLog(t, "bp-server listening", 20*time.Second)
		if addr, _ := l["http"].(string); !strings.HasSuffix(addr, fmt.Sprintf(":%d", port)) {
			t.Errorf("http listener %q, want port %d from PORT (over BP_HTTP_ADDR)", addr, port)
		}
	})
	t.Run("server flag wins", func(t *testing.T) {
		t.Parallel()
		port := freePort(t)
		srv := startServerEnv(t, []string{fmt.Sprintf("PORT=%d", port)})
		if strings.HasSuffix(srv.HTTPAddr, fmt.Sprintf(":%d", port)) {
			t.Errorf("http listener %q took PORT over --http-addr", srv.HTTPAddr)
		}
	})
	for _, flagGiven := range []bool{false, true} {
		t.Run(fmt.Sprintf("client flag=%v", flagGiven), func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			args := []string{"--log-format", "json", "--progress", "off", "--target", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)),
				"--count", "1", "--duration", "0"}
			if flagGiven {
				args = append(args, "--metrics-addr", "127.0.0.1:0")
			}
			p := startProc(t, "bp-client", []string{fmt.Sprintf("PORT=%d", port)}, args...)
			l := p.WaitLog(t, "serving metrics", 20*time.Second)
			addr, _ := l["addr"].(string)
			if got := strings.HasSuffix(addr, fmt.Sprintf(":%d", port)); got == flagGiven {
				t.Errorf("metrics listener %q with PORT=%d and --metrics-addr given %v", addr, port, flagGiven)
			}
			p.Wait(t, 20*time.Second)
		})
	}
}

// TestHelp: --help exits 0 and shows every flag with its BP_ variable
// (--version, a flag only, says so); the flags DESIGN.md makes part of the
// contract are all there.
func TestHelp(t *testing.T) {
	t.Parallel()
	reading := []string{"read-size", "read-delay", "read-rate", "pause-after", "pause-for", "pause-every", "rcvbuf"}
	contract := map[string][]string{
		"bp-server": append([]string{"http-addr", "tcp-addr", "log-format", "version"}, reading...),
		"bp-client": append([]string{"metrics-addr", "log-format", "version", "target", "direction", "payload-size",
			"rate", "count", "duration", "connections", "sndbuf", "stall-threshold", "linger", "output"}, reading...),
	}
	flagLine := regexp.MustCompile(`^\s+--([a-z0-9-]+)\b.*\((BP_[A-Z0-9_]+|flag only), default `)
	for bin, want := range contract {
		t.Run(bin, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runBinary(t, bin, nil, "--help")
			if code != 0 {
				t.Fatalf("--help exit status %d, want 0; stderr:\n%s", code, stderr)
			}
			shown := map[string]bool{}
			for _, line := range strings.Split(stdout, "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "--") {
					continue
				}
				m := flagLine.FindStringSubmatch(line)
				if m == nil {
					t.Errorf("help line without its BP_ variable and default: %q", line)
					continue
				}
				if m[1] == "version" {
					if m[2] != "flag only" {
						t.Errorf("--version is shown with %s, want flag only (BP_VERSION is ignored)", m[2])
					}
				} else if env := "BP_" + strings.ToUpper(strings.ReplaceAll(m[1], "-", "_")); m[2] != env {
					t.Errorf("--%s is shown with %s, want %s", m[1], m[2], env)
				}
				shown[m[1]] = true
			}
			for _, f := range want {
				if !shown[f] {
					t.Errorf("--help does not show --%s:\n%s", f, stdout)
				}
			}
		})
	}
}
