#!/usr/bin/env bash
# Runs every fuzz target of PKG (default ./codec) for DURATION each and
# keeps the corpus the fuzzer grew under PKG/testdata/fuzz/<Target>/ (at
# most MAX files per target, newest first), so later `go test` runs replay
# it as regression inputs. Usage: scripts/fuzz-corpus.sh [DURATION] [PKG] [MAX]
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-20s}"
pkg="${2:-./codec}"
max="${3:-200}"
dir=$(go list -f '{{.Dir}}' "$pkg")
imp=$(go list "$pkg")
cache="$(go env GOCACHE)/fuzz/$imp"
for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
	echo "fuzz $imp $f ($t)"
	go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" 2>&1 | tail -3
	if [ -d "$cache/$f" ]; then
		mkdir -p "$dir/testdata/fuzz/$f"
		# shellcheck disable=SC2012
		ls -t "$cache/$f" | head -n "$max" | while read -r e; do cp "$cache/$f/$e" "$dir/testdata/fuzz/$f/"; done
		echo "  corpus kept: $(ls "$dir/testdata/fuzz/$f" | wc -l) files"
	fi
done
