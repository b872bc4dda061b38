package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGenerated fails when the committed dashboard is not this generator's
// output: edit the Go code, then go generate ./scripts/dashboard.
func TestGenerated(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../deploy/grafana/dashboards/go-backpressure.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("deploy/grafana/dashboards/go-backpressure.json is not the generator's output: run go generate ./scripts/dashboard")
	}
}
