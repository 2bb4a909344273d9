#!/usr/bin/env bash
# paho-suite.sh runs the Eclipse Paho MQTT interoperability suite
# (client_test.py for MQTT 3.1.1, client_test5.py for MQTT 5) against mqttd.
# The suite is not part of this repository: give the path of a checkout of
# eclipse/paho.mqtt.testing (see scripts/interop/README.md).
#
#   scripts/interop/paho-suite.sh [PAHO_TESTING_DIR] [-- TEST ...]
#
# PAHO_TESTING_DIR (argument or environment) is the checkout's root or its
# "interoperability" directory. TEST names (e.g. test_basic) restrict both
# files to those tests; a name a file lacks is skipped for that file.
#
# The broker runs as bin/mqttd -config testdata/paho-interop.yaml on a free
# loopback port with a temporary data directory and is always stopped on exit.
#
# Environment:
#   MQTTD_BIN=path        use this binary instead of building bin/mqttd.
#   BROKER=mosquitto      self-check against Debian's mosquitto, configured
#                         as close to paho-interop.yaml as it allows.
#   PAHO_TEST_TIMEOUT=s   limit for one test (default 60).
#   PAHO_FILE_TIMEOUT=s   limit for one file (default 600).
#   PAHO_FILES="..."      which files to run (default "client_test.py client_test5.py").
#   KEEP_TMP=1            keep the temporary directory (broker log) on exit.
#
# Prints the suite's own output, then "PASS file/test" or "FAIL file/test: why"
# per test and finally "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BROKER="${BROKER:-mqttd}"
PAHO_TEST_TIMEOUT="${PAHO_TEST_TIMEOUT:-60}"
PAHO_FILE_TIMEOUT="${PAHO_FILE_TIMEOUT:-600}"
PAHO_FILES="${PAHO_FILES:-client_test.py client_test5.py}"

dir="${PAHO_TESTING_DIR:-}"
tests=()
while [ $# -gt 0 ]; do
	case "$1" in
	--) shift; tests=("$@"); break ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) dir="$1"; shift ;;
	esac
done
if [ -z "$dir" ]; then
	echo "paho-suite: give the path of a paho.mqtt.testing checkout (argument or PAHO_TESTING_DIR); see scripts/interop/README.md" >&2
	exit 2
fi
if [ -f "$dir/interoperability/client_test5.py" ]; then
	suite="$(cd "$dir/interoperability" && pwd)"
elif [ -f "$dir/client_test5.py" ]; then
	suite="$(cd "$dir" && pwd)"
else
	echo "paho-suite: $dir holds neither interoperability/client_test5.py nor client_test5.py" >&2
	exit 2
fi
case "$suite/" in
"$root"/*) echo "paho-suite: the suite must stay outside this repository ($suite)" >&2; exit 2 ;;
esac

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mqttd-paho.XXXXXX")"
broker_pid=""
cleanup() {
	if [ -n "$broker_pid" ]; then
		kill "$broker_pid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$broker_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "paho-suite: kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')"
log="$tmp/broker.log"

case "$BROKER" in
mqttd)
	bin="${MQTTD_BIN:-}"
	if [ -z "$bin" ]; then
		bin="$root/bin/mqttd"
		(cd "$root" && go build -o bin/mqttd ./cmd/mqttd)
	fi
	mkdir -p "$tmp/data"
	known="$("$bin" -h 2>&1 | grep -oE '^  -[a-z0-9.-]+' | sed 's/^  -//' || true)"
	# testdata/paho-interop.yaml holds the suite's settings. A key this build
	# has no flag for is only tolerated when it asks for the feature's
	# absence (persistence: false); any other missing key is an error the
	# broker reports itself.
	config="$tmp/paho-interop.yaml"
	awk -v known="$known" '
		BEGIN { n = split(known, k, "\n"); for (i = 1; i <= n; i++) have[k[i]] = 1 }
		/^[a-z][a-z0-9.-]*:/ {
			key = $0; sub(/:.*/, "", key)
			val = $0; sub(/^[^:]*:[ \t]*/, "", val); sub(/[ \t]*#.*/, "", val)
			skip = !(key in have) && key == "persistence" && val == "false"
			if (skip) { printf "paho-suite: this mqttd has no -%s flag; leaving out \"%s\"\n", key, $0 > "/dev/stderr" }
		}
		!skip { print }
	' "$root/testdata/paho-interop.yaml" >"$config"
	args=(-config "$config" -mqtt.addr "127.0.0.1:$port" -ws.addr off)
	for off in tls.addr wss.addr mqttsn.addr coap.addr lwm2m.addr admin.addr; do
		if grep -qxF "$off" <<<"$known"; then args+=("-$off" off); fi
	done
	if grep -qxF data-dir <<<"$known"; then args+=(-data-dir "$tmp/data"); fi
	# The flags only move the listeners to loopback and a free port and
	# the data to a temporary directory (flags override the file).
	"$bin" "${args[@]}" >"$log" 2>&1 &
	broker_pid=$!
	;;
mosquitto)
	# Mosquitto's nearest equivalents of paho-interop.yaml, so that this
	# script and the runner can be checked without mqttd. It has no plain
	# way to refuse one topic filter to everybody, so test_subscribe_failure
	# fails against it.
	cat >"$tmp/mosquitto.conf" <<-EOF
		listener $port 127.0.0.1
		allow_anonymous true
		persistence false
		max_keepalive 60
		max_topic_alias 2
	EOF
	"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$tmp/mosquitto.conf" >"$log" 2>&1 &
	broker_pid=$!
	;;
*)
	echo "paho-suite: unknown BROKER=$BROKER (want mqttd or mosquitto)" >&2
	exit 2
	;;
esac

up=0
for _ in $(seq 1 100); do
	kill -0 "$broker_pid" 2>/dev/null || break
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
	sleep 0.1
done
if [ "$up" != 1 ]; then
	echo "FAIL broker: $BROKER did not listen on 127.0.0.1:$port; log:"
	cat "$log"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "paho-suite: $BROKER on 127.0.0.1:$port, suite $suite"

results="$tmp/results"
: >"$results"
for file in $PAHO_FILES; do
	label="${file%.py}"
	selected=()
	if [ "${#tests[@]}" -gt 0 ]; then
		for t in "${tests[@]}"; do
			grep -qE "^    def $t\(" "$suite/$file" && selected+=("$t")
		done
		[ "${#selected[@]}" -gt 0 ] || continue
	fi
	echo "=== $file"
	rc=0
	timeout -k 5 "$PAHO_FILE_TIMEOUT" python3 -u "$here/paho_suite_run.py" \
		--test-timeout "$PAHO_TEST_TIMEOUT" "$suite" "$file" 127.0.0.1 "$port" "${selected[@]}" \
		2>&1 | tee "$tmp/$label.out" || rc=$?
	grep -E '^(PASS|FAIL) ' "$tmp/$label.out" >>"$results" || true
	if [ "$rc" -eq 124 ]; then
		echo "FAIL $label: the whole file ran past ${PAHO_FILE_TIMEOUT}s" | tee -a "$results"
	elif ! grep -qE "^$label: [0-9]+ passed, [0-9]+ failed$" "$tmp/$label.out"; then
		echo "FAIL $label: the runner stopped without results (exit $rc)" | tee -a "$results"
	fi
done

if ! kill -0 "$broker_pid" 2>/dev/null; then
	echo "FAIL broker: $BROKER exited during the suite; log tail:" | tee -a "$results"
	tail -n 20 "$log"
fi

echo
echo "=== summary"
cat "$results"
passed="$(grep -c '^PASS ' "$results" || true)"
failed="$(grep -c '^FAIL ' "$results" || true)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
