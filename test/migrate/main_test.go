// Package migrate_test holds godwit's end-to-end tests of live migration:
// godwit migrate moving a running program to a godwit serve over one TLS
// connection. Every "host" is a set of namespaces on this machine: the
// destination's godwit serve runs as the init of a new PID namespace with
// its own /proc (and, for the network tests, its own network namespace),
// so the migrated tree gets its PIDs back there while the source still holds
// them here. The tests check what the program itself sees (its pid, its
// counter, a checksum of its memory, its TCP clients) and what godwit leaves
// behind when a migration fails (the source running, unfrozen and untraced;
// nothing but serve in the destination).
//
// They need root, python3 and util-linux unshare and nsenter; the network
// tests also need iproute2 and redis-server. scripts/test.sh installs them.
//
// Run them with: go test ./test/migrate
// GODWIT_BIG=1 makes the redis tests load 1 GiB instead of 256 MiB.
package migrate_test

import (
	"os"
	"testing"

	"github.com/godwit-dev/godwit/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }
