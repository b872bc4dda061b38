package proccpu

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestUsed: this process's CPU time as Used reads it agrees with its own
// rusage (the kernel's other account of the same time) within two ticks,
// after a busy quarter second of CPU that Used sees. The loop runs until
// rusage has counted 250 ms of CPU, not 250 ms of wall time: beside a busy
// loop on a 2-core machine a 250 ms wall-time loop got 140 ms of CPU.
func TestUsed(t *testing.T) {
	before, err := Used(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start := selfCPU(t)
	for end := time.Now().Add(10 * time.Second); selfCPU(t)-start < 250*time.Millisecond; {
		if time.Now().After(end) {
			t.Fatalf("250 ms of CPU not had in 10 s (%s)", selfCPU(t)-start)
		}
		for spin := time.Now().Add(time.Millisecond); time.Now().Before(spin); {
		}
	}
	got, err := Used(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := selfCPU(t)
	if d := got - want; d > 2*clockTick || d < -2*clockTick {
		t.Errorf("Used %s, rusage %s", got, want)
	}
	if got-before < 200*time.Millisecond {
		t.Errorf("250 ms of CPU by rusage, %s by Used", got-before)
	}
}

// selfCPU is this process's user and system time by its rusage.
func selfCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestUsedMissing: a process that is gone is an error, not zero.
func TestUsedMissing(t *testing.T) {
	if _, err := Used(1 << 30); err == nil {
		t.Error("no error for a pid that does not exist")
	}
}
