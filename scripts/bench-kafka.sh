#!/usr/bin/env bash
# bench-kafka.sh measures the Kafka bridge end to end on this machine:
# Kafka (scripts/kafka.sh, KRaft, loopback), mqttd with the bridge, and
# `mqttbench -scenario kafka` (QoS 1 fan-in on a registered parent topic,
# every record checked in Kafka), for each -kafka.ack mode and payload
# size. It prints the summaries on stderr and the RESULT lines on stdout.
#
# It starts Kafka when it is not running (and stops it again at the end;
# a Kafka that was already running is left alone), and a fresh mqttd with
# an empty data dir for every case. Everything listens on 127.0.0.1 and
# every step is bounded in time.
#
# Environment:
#   KAFKA_PORT   Kafka's port (default 19092)
#   ACKS         ack modes (default "local kafka")
#   SIZES        payload sizes in bytes (default "64 1024")
#   QOS          QoS of the publishes (default 1)
#   PUBLISHERS   publishers (default 8)
#   INFLIGHT     unacknowledged messages per publisher (default 64)
#   DURATION     measurement window (default 10s), WARMUP (default 3s),
#                DRAIN (default 10s)
#   ORDERED=1    an ordered parent topic (orderMsg2mq-...)
#   VERIFY       when mqttbench reads the records back (-kafka-verify):
#                "after" (default) once the window is over, so the reading
#                does not take CPU from the publishers; "live" during the run
#                as well. The checks are the same (every acknowledged message
#                once, in order, well formed, partitions read to their end);
#                after takes arrival times from the Kafka timestamps
#                (millisecond resolution, set when the bridge's producer
#                batches the record), live from the moment the tool reads.
#   MQTTD_FLAGS  extra flags for mqttd (e.g. -debug.pprof-addr 127.0.0.1:6060)
#   BENCH_FLAGS  extra flags for mqttbench
#   MQTTD_CPUS   pin mqttd to these CPUs (taskset -c list, e.g. 0); default: not pinned
#   BENCH_CPUS   pin mqttbench likewise (e.g. 1)
#   KEEP=1       keep the work directory (mqttd logs)
#
# After each case it prints (stderr) the CPU Kafka used while mqttbench
# ran and how busy the whole machine was, over the whole run and over
# about the measurement window (WARMUP after mqttbench starts, for
# DURATION: a little early by mqttbench's setup time, so never into the
# reading that VERIFY=after does after the window): on a small machine
# Kafka, the broker, the tool and any other load share the same cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

export KAFKA_PORT="${KAFKA_PORT:-19092}"
ACKS="${ACKS:-local kafka}"
SIZES="${SIZES:-64 1024}"
QOS="${QOS:-1}"
PUBLISHERS="${PUBLISHERS:-8}"
INFLIGHT="${INFLIGHT:-64}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-3s}"
DRAIN="${DRAIN:-10s}"
ORDERED="${ORDERED:-0}"
VERIFY="${VERIFY:-after}"
GO="${GO:-go}"
TOKEN="bench-kafka-token"

say() { printf 'bench-kafka: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-kafka.XXXXXX")"
mqttd_pid=""
started_kafka=0
cleanup() {
	if [ -n "$mqttd_pid" ] && kill -0 "$mqttd_pid" 2>/dev/null; then
		kill "$mqttd_pid" 2>/dev/null || true
		wait_gone "$mqttd_pid" 15 || kill -9 "$mqttd_pid" 2>/dev/null || true
	fi
	if [ "$started_kafka" = 1 ]; then
		scripts/kafka.sh down >&2 || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		say "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_gone PID SECONDS: wait for a process to exit.
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# wait_port PORT SECONDS: wait until 127.0.0.1:PORT accepts connections.
wait_port() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		if [ -n "$mqttd_pid" ] && ! kill -0 "$mqttd_pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

say "building mqttd and mqttbench"
"$GO" build -o "$work/mqttd" ./cmd/mqttd
"$GO" build -o "$work/mqttbench" ./cmd/mqttbench

if KAFKA_WAIT=5 scripts/kafka.sh status >/dev/null 2>&1; then
	say "Kafka already runs on 127.0.0.1:$KAFKA_PORT: using it (it is left running)"
else
	scripts/kafka.sh up >&2
	started_kafka=1
fi

ordered_flag=()
if [ "$ORDERED" = 1 ]; then
	ordered_flag=(-kafka-ordered)
fi
read -r -a extra_mqttd <<<"${MQTTD_FLAGS:-}"
read -r -a extra_bench <<<"${BENCH_FLAGS:-}"
pin_mqttd=()
pin_bench=()
if [ -n "${MQTTD_CPUS:-}" ]; then
	pin_mqttd=(taskset -c "$MQTTD_CPUS")
fi
if [ -n "${BENCH_CPUS:-}" ]; then
	pin_bench=(taskset -c "$BENCH_CPUS")
fi
kafka_pidfile="${KAFKA_RUN_DIR:-${TMPDIR:-/tmp}/mqttd-kafka-$KAFKA_PORT}/kafka.pid"

# cpu_ticks PID: user+system CPU time of a process, in clock ticks (0 if gone).
cpu_ticks() {
	local f
	f="$(cat "/proc/$1/stat" 2>/dev/null)" || {
		echo 0
		return
	}
	f="${f##*) }" # the fields after the command name
	read -r -a f <<<"$f"
	echo $((f[11] + f[12]))
}

# machine_ticks: busy and total clock ticks of all CPUs.
machine_ticks() {
	local _ user nice sys idle iowait irq softirq steal
	read -r _ user nice sys idle iowait irq softirq steal _ </proc/stat
	echo "$((user + nice + sys + irq + softirq + steal)) $((user + nice + sys + idle + iowait + irq + softirq + steal))"
}

n=0
for ack in $ACKS; do
	for size in $SIZES; do
		n=$((n + 1))
		mqtt_port="$("$work/mqttbench" freeport)"
		admin_port="$("$work/mqttbench" freeport)"
		data="$work/data-$n"
		log="$work/mqttd-$n.log"
		say "case $n: ack=$ack, QoS $QOS, $size-byte payload, $PUBLISHERS publishers, records checked $VERIFY"
		"${pin_mqttd[@]}" "$work/mqttd" -mqtt.addr "127.0.0.1:$mqtt_port" -ws.addr off \
			-admin.addr "127.0.0.1:$admin_port" -admin.token "$TOKEN" \
			-data-dir "$data" -allow-anonymous -kafka.brokers "127.0.0.1:$KAFKA_PORT" -kafka.ack "$ack" \
			-log.level warn "${extra_mqttd[@]}" >"$log" 2>&1 &
		mqttd_pid=$!
		if ! wait_port "$mqtt_port" 30 || ! wait_port "$admin_port" 30; then
			tail -20 "$log" >&2
			die "mqttd did not start"
		fi
		rc=0
		kafka_pid="$(cat "$kafka_pidfile" 2>/dev/null || echo 0)"
		k0="$(cpu_ticks "$kafka_pid")"
		read -r busy0 total0 <<<"$(machine_ticks)"
		t0="$(date +%s%N)"
		# About the window: Kafka's ticks and the machine's, in the background.
		(
			sleep "$WARMUP"
			kw0="$(cpu_ticks "$kafka_pid")"
			mw0="$(machine_ticks)"
			sleep "$DURATION"
			kw1="$(cpu_ticks "$kafka_pid")"
			read -r b0 a0 <<<"$mw0"
			read -r b1 a1 <<<"$(machine_ticks)"
			echo "$((kw1 - kw0)) $((b1 - b0)) $((a1 - a0))" >"$work/win-$n.txt"
		) &
		sampler=$!
		"${pin_bench[@]}" timeout 300 "$work/mqttbench" -scenario kafka -addr "127.0.0.1:$mqtt_port" -pid "$mqttd_pid" \
			-kafka-brokers "127.0.0.1:$KAFKA_PORT" -admin-addr "127.0.0.1:$admin_port" -admin-token "$TOKEN" \
			-qos "$QOS" -size "$size" -publishers "$PUBLISHERS" -inflight "$INFLIGHT" \
			-warmup "$WARMUP" -duration "$DURATION" -drain "$DRAIN" -topic-prefix "benchkafka" -kafka-verify "$VERIFY" \
			-label mqttd -case "kafka-ack-$ack-q$QOS-$size" -quiet "${ordered_flag[@]}" "${extra_bench[@]}" \
			>"$work/out-$n.txt" || rc=$?
		t1="$(date +%s%N)"
		k1="$(cpu_ticks "$kafka_pid")"
		read -r busy1 total1 <<<"$(machine_ticks)"
		wait "$sampler" || true
		read -r kw bw tw <"$work/win-$n.txt" || { kw=0 bw=0 tw=0; }
		awk -v k=$((k1 - k0)) -v hz="$(getconf CLK_TCK)" -v ns=$((t1 - t0)) -v b=$((busy1 - busy0)) \
			-v t=$((total1 - total0)) -v cpus="$(nproc)" -v n="$n" 'BEGIN {
			s = ns / 1e9
			printf "bench-kafka: case %d: during the %.1fs of mqttbench: Kafka %.2f cores; machine %.2f of %d cores busy (everything on it)\n",
				n, s, k / hz / s, (t > 0 ? cpus * b / t : 0), cpus }' >&2
		awk -v k="$kw" -v hz="$(getconf CLK_TCK)" -v b="$bw" -v t="$tw" -v cpus="$(nproc)" -v n="$n" 'BEGIN {
			s = (t > 0 ? t / cpus / hz : 0)
			printf "bench-kafka: case %d: during about the window (%.1fs): Kafka %.2f cores; machine %.2f of %d cores busy\n",
				n, s, (s > 0 ? k / hz / s : 0), (t > 0 ? cpus * b / t : 0), cpus }' >&2
		grep -v '^RESULT ' "$work/out-$n.txt" >&2 || true
		grep '^RESULT ' "$work/out-$n.txt" || true
		if [ "$rc" -ne 0 ]; then
			say "case $n: mqttbench exited with $rc"
			tail -20 "$log" >&2
		fi
		kill "$mqttd_pid" 2>/dev/null || true
		wait_gone "$mqttd_pid" 15 || kill -9 "$mqttd_pid" 2>/dev/null || true
		mqttd_pid=""
	done
done
