package backpressurev1_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The code generators the committed code was made with; scripts/install-test-deps
// installs the same.
const (
	protocGenGo     = "protoc-gen-go v1.36.12"
	protocGenGoGRPC = "protoc-gen-go-grpc 1.6.2"
)

// protocVersion is the line naming protoc's own version in the generated
// files: protoc's version changes nothing else, so a laptop's protoc other
// than Debian's still passes.
var protocVersion = regexp.MustCompile(`(?m)^// (\s*)protoc\s+v\S+$`)

// TestProtoGenerated regenerates the service's code into a temporary
// directory, as `make proto` does, and fails if the committed files differ:
// a .proto changed without `make proto`, or code edited by hand.
func TestProtoGenerated(t *testing.T) {
	protoc := need(t, "protoc", "apt-get install protobuf-compiler")
	goBin := filepath.Join(goEnv(t, "GOPATH"), "bin")
	plugins := map[string]string{"protoc-gen-go": protocGenGo, "protoc-gen-go-grpc": protocGenGoGRPC}
	pathEnv := os.Getenv("PATH") + string(os.PathListSeparator) + goBin
	for name, want := range plugins {
		path := lookIn(name, pathEnv)
		if path == "" {
			skipOrFail(t, fmt.Sprintf("%s not installed (go install %s, or run scripts/install-test-deps)", name, installArg(want)))
		}
		out, err := exec.Command(path, "--version").CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			skipOrFail(t, fmt.Sprintf("%s is %q, the committed code was made by %q (go install %s)", path, got, want, installArg(want)))
		}
	}
	root := filepath.Join("..", "..") // proto/
	out := t.TempDir()
	cmd := exec.Command(protoc, "-I", root, "--go_out=paths=source_relative:"+out,
		"--go-grpc_out=paths=source_relative:"+out, filepath.Join(root, "backpressure", "v1", "backpressure.proto"))
	cmd.Env = append(os.Environ(), "PATH="+pathEnv)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	for _, name := range []string{"backpressure.pb.go", "backpressure_grpc.pb.go"} {
		fresh, err := os.ReadFile(filepath.Join(out, "backpressure", "v1", name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(protocVersion.ReplaceAll(fresh, nil), protocVersion.ReplaceAll(committed, nil)) {
			t.Errorf("%s differs from what protoc generates now: run make proto and commit it", name)
		}
	}
}

// installArg is the go install argument of a generator's version line.
func installArg(version string) string {
	name, v, _ := strings.Cut(version, " ")
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if name == "protoc-gen-go" {
		return "google.golang.org/protobuf/cmd/protoc-gen-go@" + v
	}
	return "google.golang.org/grpc/cmd/protoc-gen-go-grpc@" + v
}

func need(t *testing.T, name, hint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, fmt.Sprintf("%s not installed (%s, or run scripts/install-test-deps)", name, hint))
	}
	return path
}

// lookIn finds an executable in a PATH-style list.
func lookIn(name, pathList string) string {
	for _, dir := range filepath.SplitList(pathList) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// skipOrFail skips with msg, or fails in CI (CI=true), where
// scripts/install-test-deps must have installed the tools.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}
