package proccpu

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestUsed: this process's CPU time as Used reads it agrees with its own
// rusage (the kernel's other account of the same time) within two ticks,
// after a busy quarter second that Used sees.
func TestUsed(t *testing.T) {
	before, err := Used(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(250 * time.Millisecond); time.Now().Before(end); {
	}
	got, err := Used(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if d := got - want; d > 2*clockTick || d < -2*clockTick {
		t.Errorf("Used %s, rusage %s", got, want)
	}
	if got-before < 200*time.Millisecond {
		t.Errorf("a 250 ms busy loop took %s by Used", got-before)
	}
}

// TestUsedMissing: a process that is gone is an error, not zero.
func TestUsedMissing(t *testing.T) {
	if _, err := Used(1 << 30); err == nil {
		t.Error("no error for a pid that does not exist")
	}
}
