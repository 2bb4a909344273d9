#!/usr/bin/env bash
# interop.sh checks mqttd against independent MQTT client implementations:
#
#   pahopy-3.1.1, pahopy-5          Python paho-mqtt over TCP
#   mqttjs-tcp-3.1.1, mqttjs-tcp-5  MQTT.js over TCP
#   mqttjs-ws-3.1.1, mqttjs-ws-5    MQTT.js over WebSocket (ws://.../mqtt)
#   mosquitto-3.1.1, mosquitto-5    mosquitto_pub / mosquitto_sub
#   cross                           one library publishes, another receives
#
# Each one connects, subscribes, publishes at QoS 0, 1 and 2 and checks that
# every message arrives with its payload and QoS, then checks a retained
# message and its deletion. Every check prints "PASS name" or
# "FAIL name: why"; the last line is "N passed, M failed" and the exit status
# is non-zero when anything failed.
#
# The broker is built (go build -o bin/mqttd ./cmd/mqttd), started on free
# loopback ports with a temporary data directory, and always stopped on exit.
# Everything stays on 127.0.0.1. Each client step has a timeout and the checks
# as a whole stop after INTEROP_BUDGET seconds.
#
# Environment:
#   BROKER=mqttd|mosquitto  broker under test (default mqttd). "mosquitto" is
#                           the self-check of these scripts against Debian's
#                           reference broker (WebSocket through
#                           scripts/interop/ws_tcp_proxy.js).
#   MQTTD_BIN=path          use this mqttd binary instead of building one.
#   STEP_TIMEOUT=seconds    limit for one client step (default 15).
#   INTEROP_BUDGET=seconds  limit for all steps together (default 50).
#   KEEP_TMP=1              keep the temporary directory (broker log) on exit.
#
# Needs the peers that scripts/deps.sh installs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
interop="$root/scripts/interop"
BROKER="${BROKER:-mqttd}"
STEP_TIMEOUT="${STEP_TIMEOUT:-15}"
INTEROP_BUDGET="${INTEROP_BUDGET:-50}"
WAIT=5 # seconds each client waits for one expected packet

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }
summary() {
	printf '%d passed, %d failed\n' "$passed" "$failed"
	[ "$failed" -eq 0 ]
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mqttd-interop.XXXXXX")"
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		# Give the process a moment to stop, then make sure.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		printf 'interop: kept %s\n' "$tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_port PORT PID SECONDS: succeed once PORT accepts a connection; fail
# early if PID died.
wait_port() {
	local port=$1 pid=$2 limit=$3 i
	for ((i = 0; i < limit * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- broker --
mqtt_port="$(free_port)"
ws_port="$(free_port)"
while [ "$ws_port" = "$mqtt_port" ]; do ws_port="$(free_port)"; done
log="$tmp/broker.log"

broker_failed() {
	fail "broker" "$1"
	if [ -s "$log" ]; then
		printf -- '--- broker log (last 20 lines) ---\n'
		tail -n 20 "$log"
		printf -- '---\n'
	fi
	summary || exit 1
}

case "$BROKER" in
mqttd)
	bin="${MQTTD_BIN:-}"
	if [ -z "$bin" ]; then
		bin="$root/bin/mqttd"
		if ! (cd "$root" && go build -o bin/mqttd ./cmd/mqttd) >"$tmp/build.log" 2>&1; then
			fail "build" "go build ./cmd/mqttd failed: $(tail -n 5 "$tmp/build.log" | tr '\n' ' ')"
			summary || exit 1
		fi
	fi
	[ -x "$bin" ] || { fail "build" "no executable at $bin"; summary || exit 1; }
	mkdir -p "$tmp/data"
	# Flags that only switch something off or point it at the temporary
	# directory are left out when this build has no such flag (the feature
	# is absent then, which is what they ask for); the rest are required.
	known="$("$bin" -h 2>&1 | grep -oE '^  -[a-z0-9.-]+' | sed 's/^  -//' || true)"
	args=(-mqtt.addr "127.0.0.1:$mqtt_port" -ws.addr "127.0.0.1:$ws_port" -allow-anonymous)
	for off in tls.addr wss.addr mqttsn.addr coap.addr lwm2m.addr admin.addr; do
		if grep -qxF "$off" <<<"$known"; then args+=("-$off" off); fi
	done
	if grep -qxF persistence <<<"$known"; then args+=(-persistence=false); fi
	if grep -qxF data-dir <<<"$known"; then args+=(-data-dir "$tmp/data"); fi
	"$bin" "${args[@]}" >"$log" 2>&1 &
	broker_pid=$!
	pids+=("$broker_pid")
	wait_port "$mqtt_port" "$broker_pid" 10 || broker_failed "mqttd did not listen on 127.0.0.1:$mqtt_port within 10s"
	wait_port "$ws_port" "$broker_pid" 5 || broker_failed "mqttd did not listen on WebSocket 127.0.0.1:$ws_port within 5s"
	;;
mosquitto)
	mosq="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
	[ -x "$mosq" ] || { fail "broker" "mosquitto not installed (run scripts/deps.sh)"; summary || exit 1; }
	cat >"$tmp/mosquitto.conf" <<-EOF
		listener $mqtt_port 127.0.0.1
		allow_anonymous true
		persistence false
	EOF
	"$mosq" -c "$tmp/mosquitto.conf" >"$log" 2>&1 &
	broker_pid=$!
	pids+=("$broker_pid")
	wait_port "$mqtt_port" "$broker_pid" 10 || broker_failed "mosquitto did not listen on 127.0.0.1:$mqtt_port"
	node "$interop/ws_tcp_proxy.js" "$ws_port" "$mqtt_port" >"$tmp/proxy.log" 2>&1 &
	proxy_pid=$!
	pids+=("$proxy_pid")
	wait_port "$ws_port" "$proxy_pid" 10 || broker_failed "WebSocket proxy did not listen on 127.0.0.1:$ws_port: $(cat "$tmp/proxy.log")"
	;;
*)
	fail "broker" "unknown BROKER=$BROKER (want mqttd or mosquitto)"
	summary || exit 1
	;;
esac
printf 'interop: %s on mqtt://127.0.0.1:%s and ws://127.0.0.1:%s/mqtt\n' "$BROKER" "$mqtt_port" "$ws_port"

run_id="$$-$(date +%s)"
deadline=$((SECONDS + INTEROP_BUDGET))

# step_timeout prints the seconds the next step may take, 0 when the overall
# budget is spent.
step_timeout() {
	local left=$((deadline - SECONDS))
	if [ "$left" -le 0 ]; then echo 0; elif [ "$left" -lt "$STEP_TIMEOUT" ]; then echo "$left"; else echo "$STEP_TIMEOUT"; fi
}

# run_step NAME CMD...: run a helper that prints PASS/FAIL lines, count them,
# and turn a crash, a timeout or silence into a FAIL of its own.
run_step() {
	local name=$1 t rc=0 line printed=0 out err
	shift
	t="$(step_timeout)"
	if [ "$t" -eq 0 ]; then
		fail "$name" "not run: the ${INTEROP_BUDGET}s budget for all checks was spent"
		return
	fi
	out="$tmp/$name.out"
	err="$tmp/$name.err"
	timeout -k 2 "$t" "$@" >"$out" 2>"$err" || rc=$?
	while IFS= read -r line; do
		case "$line" in
		"PASS "*) pass "${line#PASS }"; printed=1 ;;
		"FAIL "*)
			line="${line#FAIL }"
			fail "${line%%: *}" "${line#*: }"
			printed=1
			;;
		esac
	done <"$out"
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail "$name" "timed out after ${t}s$(tail -n 3 "$err" | tr '\n' ' ' | sed 's/^./: &/')"
	elif [ "$rc" -ne 0 ] && [ "$printed" -eq 0 ]; then
		fail "$name" "exit status $rc: $(tail -n 5 "$err" | tr '\n' ' ')"
	elif [ "$printed" -eq 0 ]; then
		fail "$name" "printed no results"
	fi
}

# ----------------------------------------------------- Python paho-mqtt --
if python3 -c 'import paho.mqtt' 2>/dev/null; then
	for v in 3.1.1 5; do
		tag="${v//./}"
		run_step "pahopy-$v" python3 "$interop/pahopy_check.py" check \
			--host 127.0.0.1 --port "$mqtt_port" --protocol "$v" --timeout "$WAIT" \
			--name "pahopy-$v" --client-prefix "interop-pahopy$tag" \
			--prefix "interop/pahopy$tag" --run-id "$run_id"
	done
else
	fail "pahopy" "Python paho-mqtt is not installed (run scripts/deps.sh)"
fi

# ---------------------------------------------------------------- MQTT.js --
if (cd "$interop" && node -e 'require("mqtt")') 2>/dev/null; then
	for transport in tcp ws; do
		if [ "$transport" = tcp ]; then url="mqtt://127.0.0.1:$mqtt_port"; else url="ws://127.0.0.1:$ws_port/mqtt"; fi
		for v in 3.1.1 5; do
			tag="${v//./}"
			run_step "mqttjs-$transport-$v" node "$interop/mqttjs_check.js" check \
				--url "$url" --protocol "$v" --timeout "$WAIT" \
				--name "mqttjs-$transport-$v" --client-prefix "interop-mqttjs$transport$tag" \
				--prefix "interop/mqttjs$transport$tag" --run-id "$run_id"
		done
	done
else
	fail "mqttjs" "MQTT.js is not installed in scripts/interop (run scripts/deps.sh)"
fi

# ----------------------------------------------- mosquitto_pub / _sub --
# mosq_sub_start OUT ARGS...: start mosquitto_sub in the background, printing
# each message as "MSG <topic> <qos> <retain> <payload>" into OUT (with -d
# debug lines around them); sets sub_pid.
mosq_sub_start() {
	local out=$1
	shift
	timeout -k 1 "$STEP_TIMEOUT" stdbuf -oL -eL mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -d \
		-F 'MSG %t %q %r %p' "$@" >"$out" 2>&1 &
	sub_pid=$!
	pids+=("$sub_pid")
}

# wait_line FILE LINE SECONDS: succeed once a line of FILE equals LINE.
wait_line() {
	local file=$1 want=$2 limit=$3 i
	for ((i = 0; i < limit * 20; i++)); do
		grep -qxF -- "$want" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# wait_match FILE REGEX SECONDS: succeed once a line of FILE matches REGEX.
wait_match() {
	local file=$1 re=$2 limit=$3 i
	for ((i = 0; i < limit * 20; i++)); do
		grep -qE -- "$re" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# msg_lines FILE TOPIC: the messages mosquitto_sub printed for TOPIC.
msg_lines() {
	grep -F -- "MSG $2 " "$1" 2>/dev/null | tr '\n' '|' | sed 's/|$//' || true
}

stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

mosq_checks() {
	local v=$1 name="mosquitto-$1" V tag prefix cid sub q topic payload out
	[ "$v" = 5 ] && V=mqttv5 || V=mqttv311
	tag="${v//./}"
	prefix="interop/mosquitto$tag"
	cid="interop-mosquitto$tag"
	out="$tmp/$name.sub"
	if [ "$(step_timeout)" -eq 0 ]; then
		fail "$name" "not run: the ${INTEROP_BUDGET}s budget for all checks was spent"
		return
	fi

	mosq_sub_start "$out" -V "$V" -i "$cid-sub" -q 2 -t "$prefix/+"
	sub=$sub_pid
	if wait_match "$out" 'received CONNACK \(0\)' "$WAIT"; then
		pass "$name/connect"
	else
		fail "$name/connect" "no successful CONNACK within ${WAIT}s: $(grep -v '^MSG' "$out" | tail -n 3 | tr '\n' ' ')"
		stop_pid "$sub"
		return
	fi
	if wait_match "$out" '^Subscribed \(mid: [0-9]+\): ' "$WAIT"; then
		if grep -qE '^Subscribed \(mid: [0-9]+\): 2$' "$out"; then
			pass "$name/subscribe"
		else
			fail "$name/subscribe" "SUBACK granted $(grep -E '^Subscribed' "$out" | head -n 1 | sed 's/.*: //'), want 2"
			stop_pid "$sub"
			return
		fi
	else
		fail "$name/subscribe" "no SUBACK within ${WAIT}s"
		stop_pid "$sub"
		return
	fi

	for q in 0 1 2; do
		topic="$prefix/qos$q"
		payload="$name $run_id qos $q"
		# mosquitto_pub exits non-zero when the broker refuses or (QoS>0) does
		# not acknowledge.
		if ! timeout -k 1 "$WAIT" mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -V "$V" -i "$cid-pub" \
			-q "$q" -t "$topic" -m "$payload" >"$tmp/$name.pub" 2>&1; then
			fail "$name/qos$q" "mosquitto_pub failed: $(tr '\n' ' ' <"$tmp/$name.pub")"
			continue
		fi
		if wait_line "$out" "MSG $topic $q 0 $payload" "$WAIT"; then
			pass "$name/qos$q"
		else
			fail "$name/qos$q" "want \"$topic qos $q retain 0 $payload\", got [$(msg_lines "$out" "$topic")]"
		fi
	done

	topic="$prefix/retained"
	payload="$name $run_id retained"
	local late="$tmp/$name.late" ok=1
	if ! timeout -k 1 "$WAIT" mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -V "$V" -i "$cid-pub" \
		-q 1 -r -t "$topic" -m "$payload" >"$tmp/$name.pub" 2>&1; then
		fail "$name/retained" "mosquitto_pub -r failed: $(tr '\n' ' ' <"$tmp/$name.pub")"
		ok=0
	elif ! wait_line "$out" "MSG $topic 1 0 $payload" "$WAIT"; then
		# A live subscriber gets retain=0 [MQTT-3.3.1-9].
		fail "$name/retained" "live subscriber: want \"$topic qos 1 retain 0\", got [$(msg_lines "$out" "$topic")]"
		ok=0
	else
		# A new subscriber gets the stored copy with retain=1 [MQTT-3.3.1-8].
		timeout -k 1 "$WAIT" mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -V "$V" -i "$cid-late" \
			-q 2 -t "$topic" -C 1 -W "$WAIT" -F 'MSG %t %q %r %p' >"$late" 2>&1 || true
		if grep -qxF -- "MSG $topic 1 1 $payload" "$late"; then
			pass "$name/retained"
		else
			fail "$name/retained" "new subscriber: want \"$topic qos 1 retain 1 $payload\", got [$(tr '\n' '|' <"$late")]"
			ok=0
		fi
	fi
	if [ "$ok" = 1 ]; then
		# An empty retained payload deletes it [MQTT-3.3.1-10].
		if ! timeout -k 1 "$WAIT" mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -V "$V" -i "$cid-pub" \
			-q 1 -r -n -t "$topic" >"$tmp/$name.pub" 2>&1; then
			fail "$name/retained-clear" "mosquitto_pub -r -n failed: $(tr '\n' ' ' <"$tmp/$name.pub")"
		else
			timeout -k 1 3 mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -V "$V" -i "$cid-later" \
				-q 2 -t "$topic" -C 1 -W 1 -F 'MSG %t %q %r %p' >"$late" 2>&1 || true
			if grep -qF -- "MSG $topic " "$late"; then
				fail "$name/retained-clear" "a new subscriber still got [$(tr '\n' '|' <"$late")]"
			else
				pass "$name/retained-clear"
			fi
		fi
	fi
	stop_pid "$sub"
}

if command -v mosquitto_sub >/dev/null 2>&1; then
	mosq_checks 3.1.1
	mosq_checks 5
else
	fail "mosquitto" "mosquitto_pub/mosquitto_sub are not installed (run scripts/deps.sh)"
fi

# ---------------------------------------------------------------- cross --
# Two mosquitto_sub listeners (3.1.1 and 5) on one filter; MQTT.js publishes
# as MQTT 5 over WebSocket and paho-mqtt as 3.1.1 over TCP. Each message must
# reach both listeners with its payload and QoS, whatever the protocol
# version and transport on either side.
cross_checks() {
	local prefix="interop/cross" l3="$tmp/cross-311.sub" l5="$tmp/cross-5.sub" s3 s5 t
	if [ "$(step_timeout)" -eq 0 ]; then
		fail "cross" "not run: the ${INTEROP_BUDGET}s budget for all checks was spent"
		return
	fi
	mosq_sub_start "$l3" -V mqttv311 -i interop-cross-l311 -q 2 -t "$prefix/+"
	s3=$sub_pid
	mosq_sub_start "$l5" -V mqttv5 -i interop-cross-l5 -q 2 -t "$prefix/+"
	s5=$sub_pid
	if ! wait_match "$l3" '^Subscribed' "$WAIT" || ! wait_match "$l5" '^Subscribed' "$WAIT"; then
		fail "cross" "listeners did not subscribe within ${WAIT}s"
		stop_pid "$s3"
		stop_pid "$s5"
		return
	fi

	# check_both NAME TOPIC QOS PAYLOAD
	check_both() {
		local name=$1 topic=$2 qos=$3 payload=$4 f miss=""
		for f in "$l3" "$l5"; do
			if ! wait_line "$f" "MSG $topic $qos 0 $payload" "$WAIT"; then
				miss+=" $(basename "$f" .sub): got [$(msg_lines "$f" "$topic")];"
			fi
		done
		if [ -z "$miss" ]; then
			pass "$name"
		else
			fail "$name" "want \"$topic qos $qos $payload\" at both listeners;$miss"
		fi
	}

	t="$(step_timeout)"
	if [ "$t" -eq 0 ]; then
		fail "cross/mqttjs-ws-5-to-mosquitto" "not run: the ${INTEROP_BUDGET}s budget for all checks was spent"
	elif (cd "$interop" && timeout -k 1 "$t" node mqttjs_check.js publish \
		--url "ws://127.0.0.1:$ws_port/mqtt" --protocol 5 --timeout "$WAIT" --name cross \
		--client-prefix interop-cross-mqttjs --topic "$prefix/mqttjs" --payload "cross $run_id mqttjs" --qos 1) \
		>"$tmp/cross-js.out" 2>&1; then
		check_both "cross/mqttjs-ws-5-to-mosquitto" "$prefix/mqttjs" 1 "cross $run_id mqttjs"
	else
		fail "cross/mqttjs-ws-5-to-mosquitto" "MQTT.js publish failed: $(tr '\n' ' ' <"$tmp/cross-js.out" 2>/dev/null)"
	fi

	t="$(step_timeout)"
	if [ "$t" -eq 0 ]; then
		fail "cross/pahopy-3.1.1-to-mosquitto" "not run: the ${INTEROP_BUDGET}s budget for all checks was spent"
	elif timeout -k 1 "$t" python3 "$interop/pahopy_check.py" publish \
		--host 127.0.0.1 --port "$mqtt_port" --protocol 3.1.1 --timeout "$WAIT" --name cross \
		--client-prefix interop-cross-pahopy --topic "$prefix/pahopy" --payload "cross $run_id pahopy" --qos 2 \
		>"$tmp/cross-py.out" 2>&1; then
		check_both "cross/pahopy-3.1.1-to-mosquitto" "$prefix/pahopy" 2 "cross $run_id pahopy"
	else
		fail "cross/pahopy-3.1.1-to-mosquitto" "paho-mqtt publish failed: $(tr '\n' ' ' <"$tmp/cross-py.out" 2>/dev/null)"
	fi
	stop_pid "$s3"
	stop_pid "$s5"
}

if command -v mosquitto_sub >/dev/null 2>&1 && python3 -c 'import paho.mqtt' 2>/dev/null &&
	(cd "$interop" && node -e 'require("mqtt")') 2>/dev/null; then
	cross_checks
else
	fail "cross" "needs mosquitto-clients, paho-mqtt and MQTT.js (run scripts/deps.sh)"
fi

# The broker must have survived everything above.
if kill -0 "$broker_pid" 2>/dev/null; then
	pass "broker/alive"
else
	wait "$broker_pid" 2>/dev/null && rc=0 || rc=$?
	fail "broker/alive" "the broker exited (status $rc) during the checks; log tail: $(tail -n 5 "$log" | tr '\n' ' ')"
fi

summary
