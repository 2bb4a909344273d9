#!/usr/bin/env bash
# Runs every Go fuzz target of the module for the given time each
# (default 3s). Usage: scripts/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-3s}"
n=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	ls "$dir"/*_test.go >/dev/null 2>&1 || continue
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $f ($t)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >/tmp/mqttd-fuzz.log 2>&1 || { cat /tmp/mqttd-fuzz.log; echo "fuzz target $f failed"; exit 1; }
		n=$((n+1))
	done
done
echo "fuzz: $n targets, $t each, no failures"
