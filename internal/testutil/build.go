package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Main runs the tests of a package that uses BuildGodwit or BuildC and then
// removes what they built. Call it from TestMain: os.Exit(testutil.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	build.Lock()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	build.Unlock()
	return code
}

// build caches what this test binary built, in one directory readable by
// every user (tests run victims as other users too).
var build struct {
	sync.Mutex
	dir    string
	dirErr error
	c      map[string]*built
}

type built struct {
	once sync.Once
	path string
	err  error
}

var godwitBin built

func buildDir() (string, error) {
	build.Lock()
	defer build.Unlock()
	if build.dir == "" && build.dirErr == nil {
		build.dir, build.dirErr = os.MkdirTemp("", "godwit-testbin-")
		if build.dirErr == nil {
			build.dirErr = os.Chmod(build.dir, 0o755)
		}
	}
	return build.dir, build.dirErr
}

// ModuleRoot returns the directory of godwit's go.mod, found by walking up
// from the working directory (go test runs a test in its package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/godwit-dev/godwit\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("godwit's go.mod not found above the working directory")
		}
		dir = parent
	}
}

// goTool finds the go command: on PATH (go test puts GOROOT/bin first), or
// in the default install location.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if p := "/usr/local/go/bin/go"; fileExists(p) {
		return p, nil
	}
	return "", errors.New("the go command is not on PATH")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// BuildGodwit builds ./cmd/godwit once per test binary and returns the path
// of the binary.
func BuildGodwit(t testing.TB) string {
	t.Helper()
	godwitBin.once.Do(func() {
		godwitBin.path, godwitBin.err = buildGodwit()
	})
	if godwitBin.err != nil {
		t.Fatalf("build godwit: %v", godwitBin.err)
	}
	return godwitBin.path
}

func buildGodwit() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	gobin, err := goTool()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "godwit")
	cmd := exec.Command(gobin, "build", "-o", out, "./cmd/godwit")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/godwit: %v\n%s", err, b)
	}
	return out, nil
}

// BuildC compiles the C program src (with gcc -O1 -pthread -Wall and
// extraFlags) once per test binary for each distinct src and flags, and
// returns the path of the executable. It skips the test when gcc is missing.
func BuildC(t testing.TB, src string, extraFlags ...string) string {
	t.Helper()
	RequireCommand(t, "gcc")
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	key := abs + "\x00" + strings.Join(extraFlags, "\x00")
	build.Lock()
	if build.c == nil {
		build.c = map[string]*built{}
	}
	b := build.c[key]
	if b == nil {
		b = &built{}
		build.c[key] = b
	}
	build.Unlock()
	b.once.Do(func() { b.path, b.err = buildC(abs, key, extraFlags) })
	if b.err != nil {
		t.Fatalf("build %s: %v", src, b.err)
	}
	return b.path
}

func buildC(src, key string, extraFlags []string) (string, error) {
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(key))
	name := strings.TrimSuffix(filepath.Base(src), ".c") + "-" + hex.EncodeToString(sum[:4])
	out := filepath.Join(dir, name)
	args := append([]string{"-O1", "-pthread", "-Wall", "-o", out, src}, extraFlags...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}
