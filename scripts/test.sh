#!/usr/bin/env bash
# test.sh: install what the tests need, then run every check CI runs:
# gofmt, go vet, staticcheck, go test -race and go test (with the end-to-end
# tests of test/e2e, which need root). Prints a summary; exits non-zero when
# any step failed.
#
# Usage: bash scripts/test.sh        (as root; CI runs it with CI=true)
# Env:   SKIP_APT=1 skips the package installation step.
set -uo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2
PACKAGES=(gcc libc6-dev python3 strace busybox-static uidmap redis-server nginx iproute2 passwd procps)

declare -a RESULTS=()
FAILED=0

# step NAME CMD...: runs CMD, records PASS/FAIL with the time it took.
step() {
	local name=$1
	shift
	echo
	echo "=== $name: $*"
	local start=$SECONDS
	if "$@"; then
		RESULTS+=("PASS  $name ($((SECONDS - start))s)")
	else
		RESULTS+=("FAIL  $name ($((SECONDS - start))s)")
		FAILED=1
	fi
}

install_packages() {
	if [ "${SKIP_APT:-0}" = 1 ]; then
		echo "SKIP_APT=1: not installing packages"
		return 0
	fi
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "all packages already installed"
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "not root: cannot install ${missing[*]}; the tests that need them will skip"
		return 0
	fi
	echo "installing: ${missing[*]}"
	apt-get update -q </dev/null &&
		apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# need_go puts a Go >= 1.24 on PATH, or fails.
need_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH=/usr/local/go/bin:$PATH
	fi
	if ! command -v go >/dev/null 2>&1; then
		echo "go not found: install Go >= 1.24 (e.g. into /usr/local/go)"
		return 1
	fi
	local v
	v=$(go env GOVERSION | sed 's/^go//')
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 24 ]; }; then
		echo "go $v is too old: need >= 1.24"
		return 1
	fi
	echo "using $(command -v go) ($v)"
	export PATH=$(go env GOROOT)/bin:$(go env GOPATH)/bin:$PATH
}

check_gofmt() {
	local bad
	bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
	if [ -n "$bad" ]; then
		echo "not gofmt-ed (run gofmt -w):"
		echo "$bad"
		return 1
	fi
}

run_staticcheck() {
	go run "$STATICCHECK" ./...
}

# race_packages lists the packages that start goroutines (their non-test or
# test files use "go " statements or sync), which -race is for.
race_packages() {
	go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
		if grep -lqE '^\s*go (func|[a-zA-Z_.]+\()|sync\.' "$dir"/*.go 2>/dev/null; then
			echo "$pkg"
		fi
	done | grep -vE '/test/(e2e|migrate)$'
}

run_race() {
	local pkgs
	pkgs=$(race_packages)
	if [ -z "$pkgs" ]; then
		echo "no package starts goroutines"
		return 0
	fi
	echo "$pkgs"
	# shellcheck disable=SC2086
	go test -race -count=1 -timeout 20m $pkgs
}

step "install packages" install_packages
step "go toolchain" need_go
if command -v go >/dev/null; then
	step "gofmt" check_gofmt
	step "go build" go build ./...
	step "go vet" go vet ./...
	step "staticcheck" run_staticcheck
	step "go test -race" run_race
	step "go test" go test -count=1 -timeout 45m ./...
fi

echo
echo "=== summary"
printf '%s\n' "${RESULTS[@]}"
if [ "$(id -u)" != 0 ]; then
	echo "note: not root: the end-to-end tests were skipped"
fi
if [ "$FAILED" != 0 ]; then
	echo "FAILED"
	exit 1
fi
echo "all passed"
