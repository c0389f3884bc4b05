# awk -v metric=M -v filters="LABEL=REGEX<US>..." -f prom_value.awk FILE:
# what prom_value.py prints, for machines without python3 (the VM kernels):
# the sum of the samples of M whose labels all match; filters are separated
# by the ASCII unit separator (octal 037). natbpf's text format itself is
# checked by prometheus_client's parser on the host run.
function label(line, name,    at, rest) {
	at = index(line, name "=\"")
	if (at == 0) return ""
	rest = substr(line, at + length(name) + 2)
	# the value ends at the first quote not escaped by a backslash
	out = ""
	while (length(rest) > 0) {
		c = substr(rest, 1, 1)
		if (c == "\\") { out = out substr(rest, 2, 1); rest = substr(rest, 3); continue }
		if (c == "\"") break
		out = out c
		rest = substr(rest, 2)
	}
	return out
}
BEGIN { n = split(filters, f, "\037"); total = 0 }
index($0, metric "{") == 1 || $1 == metric {
	ok = 1
	for (i = 1; i <= n; i++) {
		eq = index(f[i], "=")
		if (label($0, substr(f[i], 1, eq - 1)) !~ substr(f[i], eq + 1)) ok = 0
	}
	if (ok) total += $NF
}
END { printf "%d\n", total }
