package relay_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// relayed connection, and every fault path, must end what it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
