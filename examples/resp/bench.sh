#!/usr/bin/env bash
# bench.sh: the RESP example server on mai versus redis-server, side by side,
# with redis-benchmark. Run from anywhere inside the repository:
#
#   examples/resp/bench.sh                 # 3 rounds, median per cell
#   ROUNDS=5 N=500000 examples/resp/bench.sh
#   TRANSPORTS="netpoll epoll" examples/resp/bench.sh   # one mai column each
#   PROFILE=/tmp/mai examples/resp/bench.sh   # CPU profiles /tmp/mai.<transport>.prof
#
# Both servers run pinned to CPU 0 (taskset -c 0; Go then runs with
# GOMAXPROCS=1, as redis-server runs one thread), redis-benchmark to CPU 1.
# Each round runs every configuration against mai and then redis-server, so
# background noise hits both alike; the tables show the median of the rounds:
# requests per second, and the server's CPU time per request (user + system,
# from /proc: steadier than throughput on a busy machine). Needs: go,
# redis-server, redis-benchmark, redis-cli, taskset, Linux /proc.
# Only loopback is used; only the processes started here are killed.
set -euo pipefail

N=${N:-200000}
C=${C:-50}
ROUNDS=${ROUNDS:-3}
TESTS=${TESTS:-ping,set,get}
PIPELINES=${PIPELINES:-"1 16"}
TRANSPORTS=${TRANSPORTS:-netpoll}
MAI_PORT=${MAI_PORT:-6380} # first port; one per transport
REDIS_PORT=${REDIS_PORT:-6399} # clear of the mai ports
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PROFILE=${PROFILE:-}

for bin in go redis-server redis-benchmark redis-cli taskset; do
	command -v "$bin" >/dev/null || { echo "bench.sh: $bin not found" >&2; exit 1; }
done

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/resp-server" ./examples/resp/server)

# wait_ping PORT: bounded wait for a server to answer PING.
wait_ping() {
	for _ in $(seq 1 200); do
		if [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; then
			return 0
		fi
		sleep 0.05
	done
	echo "bench.sh: nothing answers PING on port $1" >&2
	exit 1
}

# servers[name]=port: one mai server per transport, and redis-server.
declare -A servers
names=()
port=$MAI_PORT
for tr in $TRANSPORTS; do
	args=(-addr "127.0.0.1:$port" -transport "$tr")
	if [ -n "$PROFILE" ]; then
		args+=(-cpuprofile "$PROFILE.$tr.prof")
	fi
	taskset -c "$SERVER_CPU" "$work/resp-server" "${args[@]}" >"$work/mai-$tr.log" 2>&1 &
	pids+=($!)
	servers["mai-$tr"]=$port
	names+=("mai-$tr")
	port=$((port + 1))
done
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
	--save '' --appendonly no --daemonize no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
servers[redis]=$REDIS_PORT
names+=(redis)
for name in "${names[@]}"; do
	wait_ping "${servers[$name]}"
done

# cpu_ticks PID: the process's user + system time, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A pidof
i=0
for name in "${names[@]}"; do
	pidof[$name]=${pids[$i]}
	i=$((i + 1))
done

# One CSV line per (round, server, pipeline, test): rps, CPU µs per request.
results="$work/results.csv"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
	for p in $PIPELINES; do
		for server in "${names[@]}"; do
			port=${servers[$server]}
			redis-cli -h 127.0.0.1 -p "$port" flushall >/dev/null
			for test in ${TESTS//,/ }; do
				before=$(cpu_ticks "${pidof[$server]}")
				taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" \
					-t "$test" -c "$C" -n "$N" -P "$p" --csv >"$work/out.csv" 2>"$work/err.txt"
				after=$(cpu_ticks "${pidof[$server]}")
				if [ -s "$work/err.txt" ]; then
					echo "bench.sh: redis-benchmark against $server reported errors:" >&2
					cat "$work/err.txt" >&2
					exit 1
				fi
				# -t ping runs two tests (inline, multibulk): split the CPU.
				lines=$(($(wc -l <"$work/out.csv") - 1))
				tail -n +2 "$work/out.csv" | tr -d '"' |
					awk -F, -v r="$round" -v s="$server" -v p="$p" -v t=$((after - before)) \
						-v hz="$hz" -v n="$N" -v k="$lines" \
						'{printf "%s,%s,%s,%s,%s,%.3f\n", r, s, p, $1, $2, t / hz * 1e6 / (n * k)}' >>"$results"
			done
		done
	done
done

# Median of the rounds per cell, as a Markdown table.
echo
echo "redis-benchmark -t $TESTS -c $C -n $N, median of $ROUNDS rounds," \
	"servers on CPU $SERVER_CPU, redis-benchmark on CPU $CLIENT_CPU, $(date -u +%Y-%m-%d)"
echo "$(redis-server --version | awk '{print $1, $2, $3}'), $(go version | awk '{print $3}'), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
cell() { awk -F, -v s="$1" -v p="$2" -v t="$3" -v f="$4" '$2==s && $3==p && $4==t {print $f}' "$results" | median; }
# table FIELD FORMAT TITLE: one row per (pipeline, test), mai / redis ratios.
table() {
	echo
	echo "$3"
	echo
	header="| test | -P | redis-server |"
	rule="|---|---:|---:|"
	for tr in $TRANSPORTS; do
		header+=" mai ($tr) | mai / redis |"
		rule+="---:|---:|"
	done
	echo "$header"
	echo "$rule"
	for p in $PIPELINES; do
		for test in $(awk -F, -v p="$p" '$3==p {print $4}' "$results" | awk '!seen[$0]++'); do
			r=$(cell redis "$p" "$test" "$1")
			row="| $test | $p | $(awk -v r="$r" -v f="$2" 'BEGIN {printf f, r}') |"
			for tr in $TRANSPORTS; do
				m=$(cell "mai-$tr" "$p" "$test" "$1")
				row+=$(awk -v m="$m" -v r="$r" -v f="$2" 'BEGIN {printf " " f " | %.2f |", m, m / r}')
			done
			echo "$row"
		done
	done
}
table 5 "%.0f" "Requests per second (higher is better):"
table 6 "%.2f" "Server CPU time per request, µs (user + system; lower is better):"
