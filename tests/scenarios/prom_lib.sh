# Helpers of the natbpf drops --prometheus scenarios: scraping /metrics with
# nc (there is no curl in the VMs) and reading series from the text.

# prom_scrape PORT FILE: the body of GET /metrics on 127.0.0.1:PORT, with a 200 status.
prom_scrape() {
	printf 'GET /metrics HTTP/1.0\r\nHost: natbpf\r\n\r\n' | nc -N -w 20 127.0.0.1 "$1" >"$2.http" ||
		fail "GET /metrics failed"
	head -1 "$2.http" | grep -q '^HTTP/1.[01] 200' || { head -5 "$2.http"; fail "GET /metrics did not answer 200"; }
	sed '1,/^\r$/d' "$2.http" >"$2"
}

# prom_value FILE METRIC LABEL=REGEX...: the sum of the samples whose labels
# match, read by prometheus_client's parser (Debian's python3: a pyenv one
# may shadow it without the package); the VM kernels have no python3 and
# read the lines with prom_value.awk.
prom_value() {
	local f=$1 metric=$2 py=/usr/bin/python3 dir
	dir=$(dirname "${BASH_SOURCE[0]}")
	shift 2
	if [ -x $py ] && $py -c 'import prometheus_client' 2>/dev/null; then
		$py "$dir/prom_value.py" "$f" "$metric" "$@"
	elif [ "${NATBPF_EXPECT_PATH:-}" = tracepoint ]; then
		echo "python3-prometheus-client is missing (scripts/setup.sh installs it)" >&2
		return 1
	else
		local IFS=$'\037'  # filters joined by the unit separator: their regexes hold spaces
		awk -v metric="$metric" -v filters="$*" -f "$dir/prom_value.awk" "$f"
	fi
}
