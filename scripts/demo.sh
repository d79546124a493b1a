#!/usr/bin/env bash
# demo.sh: build godwit and run "godwit demo": a small Python program is
# checkpointed, killed and restored under the same PID, and carries on
# counting. Needs root and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi
if ! command -v python3 >/dev/null 2>&1; then
	echo "demo.sh: python3 is needed (apt-get install python3)" >&2
	exit 1
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# The godwit_demo tag keeps demo.go out of builds until its packages land;
# it is harmless once the tag is gone.
go build -tags godwit_demo -o "$bin/godwit" ./cmd/godwit
"$bin/godwit" demo "$@"
