package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// TestShow decodes an image with godwit show and show --json: the text names
// the process, the JSON is valid and holds the pid and every tid, output is
// deterministic, and show leaves the image unchanged.
func TestShow(t *testing.T) {
	setup(t)
	v := startC(t, testutil.VictimOptions{}, "--threads", "2", "--file")
	rep := poke(t, v)
	img := dumpKill(t, v)
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}

	text := godwit(t, "show", "--image", img)
	if text.ExitCode != 0 {
		t.Fatalf("show failed:\n%s", text)
	}
	if !strings.Contains(text.Stdout, strconv.Itoa(rep.PID)) {
		t.Errorf("show does not mention pid %d:\n%s", rep.PID, text.Stdout)
	}
	if again := godwit(t, "show", "--image", img); again.Stdout != text.Stdout {
		t.Errorf("show printed different output for the same image:\n%s\n---\n%s", text.Stdout, again.Stdout)
	}

	js := godwit(t, "show", "--json", "--image", img)
	if js.ExitCode != 0 {
		t.Fatalf("show --json failed:\n%s", js)
	}
	var doc any
	if err := json.Unmarshal([]byte(js.Stdout), &doc); err != nil {
		t.Fatalf("show --json printed invalid JSON: %v\n%s", err, js.Stdout)
	}
	nums := map[float64]bool{}
	collectNumbers(doc, nums)
	for _, tid := range rep.TIDs {
		if !nums[float64(tid)] {
			t.Errorf("show --json does not hold tid %d", tid)
		}
	}
	if !hasKeyValue(doc, "pid", float64(rep.PID)) {
		t.Errorf("show --json has no \"pid\"-like key with value %d", rep.PID)
	}
	if after, err := os.ReadFile(img); err != nil || !bytes.Equal(after, orig) {
		t.Errorf("show changed the image (%v)", err)
	}

	missing := godwit(t, "show", "--log-format", "json", "--image", filepath.Join(t.TempDir(), "none"))
	if missing.ExitCode == 0 {
		t.Errorf("show of a missing file succeeded:\n%s", missing)
	}
	bad := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(bad, []byte("this is not a godwit image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantCode(t, godwit(t, "show", "--log-format", "json", "--image", bad), "bad-image")
}

func collectNumbers(v any, into map[float64]bool) {
	switch x := v.(type) {
	case float64:
		into[x] = true
	case []any:
		for _, e := range x {
			collectNumbers(e, into)
		}
	case map[string]any:
		for _, e := range x {
			collectNumbers(e, into)
		}
	}
}

// hasKeyValue reports whether some object in v has a key that, lower-cased,
// is or ends in key, with the value want.
func hasKeyValue(v any, key string, want float64) bool {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if hasKeyValue(e, key, want) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if n, ok := e.(float64); ok && n == want && strings.HasSuffix(strings.ToLower(k), key) {
				return true
			}
			if hasKeyValue(e, key, want) {
				return true
			}
		}
	}
	return false
}
