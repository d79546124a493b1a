package e2e

import (
	"os"
	"testing"

	"github.com/godwit-dev/godwit/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }
