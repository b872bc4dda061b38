//go:build !race

package e2e

// raceEnabled: the tests run with -race, so the binaries are built with it.
const raceEnabled = false
