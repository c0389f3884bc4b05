# Helpers for scenario tests: namespaces that are always removed, readiness
# handshakes, and assertions that print what natbpf said when they fail.
# Each scenario is a bash script: `source lib.sh`, build, run, assert. Exit 0
# pass, 1 fail, 77 skip (only when the kernel truly lacks a capability).

set -uo pipefail
NATBPF=${NATBPF:-natbpf}
SCEN_NS=()
SCEN_PIDS=()
SCEN_TMP=$(mktemp -d /tmp/natbpf-scenario.XXXXXX)

scen_cleanup() {
	for p in "${SCEN_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${SCEN_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for ns in "${SCEN_NS[@]}" $(cat "$SCEN_TMP/netns" 2>/dev/null); do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$SCEN_TMP"
}
trap scen_cleanup EXIT

# A namespace name unique to this run, removed on exit. Usually called as
# ns=$(scen_netns name): a subshell, so it is registered in a file.
scen_netns() {
	local ns="nb$$-$1"
	echo "$ns" >>"$SCEN_TMP/netns"
	SCEN_NS+=("$ns")  # visible when not called in a subshell
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up
	echo "$ns"
}

scen_bg() {
	"$@" &
	SCEN_PIDS+=($!)
}

# Waits (bounded) for a file to appear: natbpf writes --ready-file once attached.
scen_wait_file() {
	local f=$1 tries=${2:-100}
	while [ ! -e "$f" ] && [ "$tries" -gt 0 ]; do
		sleep 0.1
		tries=$((tries - 1))
	done
	[ -e "$f" ]
}

# scen_wait_listen NS PORT: a TCP listener is up (bounded; slow under TCG).
scen_wait_listen() {
	local tries=0
	until ip netns exec "$1" ss -Htln "sport = :$2" | grep -q .; do
		tries=$((tries + 1))
		[ $tries -le 100 ] || fail "the listener on $2 did not start"
		sleep 0.1
	done
}

# scen_conntrack_on NS: a rule that makes the namespace track connections
# (conntrack hooks are registered per namespace only when something needs them).
scen_conntrack_on() {
	ip netns exec "$1" nft -f - <<'NFT' || fail "nft failed"
table inet natbpf_conntrack_on {
	chain output {
		type filter hook output priority filter; policy accept;
		ct state new counter
	}
}
NFT
}

# scen_seed001 PREFIX [BACKEND]: the seed 001 incident of
# scripts/scenarios/seed001.sh (source it first) in namespaces PREFIX-client,
# PREFIX-host and PREFIX-ct, removed on exit, with the container's port 22
# listening. BACKEND: nft (default), iptables-nft or iptables-legacy.
scen_seed001() {
	local p=$1 backend=${2:-nft}
	SCEN_NS+=("$p-client" "$p-host" "$p-ct")
	seed001_up "$p" "$backend" || fail "cannot build the seed 001 namespaces ($backend)"
	local listener
	listener=$(seed001_listen "$p") || fail "cannot start the seed 001 listener"
	SCEN_PIDS+=("$listener")  # socat itself, so cleanup stops it (it outlives its namespace otherwise)
}

# scen_seed001_before_after PREFIX OUT: the incident while natbpf watches
# (its --json stories going to OUT): a connection that times out, the fix
# natbpf gives for it (the missing set element: its fix.command, run in the
# host namespace as given), then a connection that works.
scen_seed001_before_after() {
	local cmd="" tries=0
	seed001_connect "$1" 2 && fail "the connection should time out before the fix"
	until [ -n "$cmd" ]; do
		cmd=$(jq -r 'select(.type == "packet" and .fix != null) | .fix.command' "$2" 2>/dev/null | head -1)
		tries=$((tries + 1))
		[ $tries -le 100 ] || fail "natbpf gave no fix for the dropped SYN"
		[ -n "$cmd" ] || sleep 0.1
	done
	[ "$cmd" = "nft add element inet filter allow_in { 192.168.70.10 . 22 }" ] || fail "natbpf's fix reads '$cmd'"
	ip netns exec "$1-host" sh -c "$cmd" || fail "natbpf's fix '$cmd' failed"
	seed001_connect "$1" 5 | grep -q SSH-2.0 || fail "the connection should work after natbpf's fix"
}

# A test tool (udpclash, udpflood): beside natbpf, or in tests/tools/bin.
scen_tool() { # NAME
	local c
	for c in "$(dirname "$(command -v "$NATBPF" || echo "$NATBPF")")/$1" \
		"$(dirname "${BASH_SOURCE[0]}")/../tools/bin/$1"; do
		[ -x "$c" ] && { echo "$c"; return 0; }
	done
	fail "tests/tools/bin/$1 is missing: build the project (cmake --build) first"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# assert_contains FILE PATTERN [message]: grep -E on natbpf's output.
assert_contains() {
	if ! grep -Eq -- "$2" "$1"; then
		echo "---- output ($1) ----" >&2
		cat "$1" >&2
		fail "${3:-expected /$2/}"
	fi
}

assert_not_contains() {
	if grep -Eq -- "$2" "$1"; then
		echo "---- output ($1) ----" >&2
		cat "$1" >&2
		fail "${3:-unexpected /$2/}"
	fi
}

# expect_error CODE PATTERN CMD...: CMD exits CODE and prints exactly one
# line on stderr matching PATTERN (bad input: one line naming the fix).
expect_error() { # CODE PATTERN CMD...
	local code=$1 pat=$2
	shift 2
	"$@" >"$SCEN_TMP/out" 2>"$SCEN_TMP/err"
	local rc=$?
	[ "$rc" -eq "$code" ] || { cat "$SCEN_TMP/err"; fail "'$*' exited $rc, expected $code"; }
	[ "$(wc -l <"$SCEN_TMP/err")" -eq 1 ] || { cat "$SCEN_TMP/err"; fail "'$*' should print one line"; }
	assert_contains "$SCEN_TMP/err" "$pat"
}

# explain_same REC LIVE [ARGS...]: `natbpf explain REC ARGS` run as an
# unprivileged user prints exactly LIVE, what the recorded run printed.
explain_same() {
	local rec=$1 live=$2
	shift 2
	chmod 755 "$SCEN_TMP"
	chmod 644 "$rec"
	setpriv --reuid=65534 --regid=65534 --clear-groups $NATBPF explain "$rec" "$@" >"$live.offline" 2>"$live.offline.err" ||
		{ cat "$live.offline.err"; fail "natbpf explain $rec failed"; }
	[ -s "$live.offline.err" ] && grep -q "may differ" "$live.offline.err" && { cat "$live.offline.err"; fail "the replay of $rec was incomplete"; }
	cmp -s "$live" "$live.offline" || {
		diff "$live" "$live.offline" | head -40
		fail "natbpf explain $rec printed other output than the live run"
	}
}

# jq_true FILE EXPR [message]: the JSON document in FILE satisfies EXPR.
jq_true() {
	if [ "$(jq -r "$2" "$1" 2>&1)" != "true" ]; then
		echo "---- json ($1) ----" >&2
		jq . "$1" >&2 || cat "$1" >&2
		fail "${3:-jq: $2}"
	fi
}

# The attach path this kernel is expected to take, set by the runner:
# tracepoint (this machine), fentry or kprobe (VM kernels).
NATBPF_EXPECT_PATH=${NATBPF_EXPECT_PATH:-tracepoint}
