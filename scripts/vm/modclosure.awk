# Computes which kernel modules the test VM needs (used by scripts/vm-test.sh).
#   awk -f modclosure.awk modules.txt modules.dep modules.softdep
# Prints "load NAME" for every module selected by modules.txt (in its order),
# "file PATH" for every module file of the selection plus its dependency closure
# (modules.dep, and softdeps naming real modules), and "nomatch PATTERN" for a
# pattern that matched no module of this kernel.

function norm(s) { gsub(/-/, "_", s); return s }
function modname(path,   n) {
	n = path; sub(/.*\//, "", n); sub(/\.ko(\.xz|\.zst|\.gz)?$/, "", n); return norm(n)
}
function glob2re(g,   re) {
	re = g
	gsub(/[.+^$()|{}\\]/, "\\\\&", re)
	gsub(/\*/, ".*", re); gsub(/\?/, ".", re)
	return "^" re "$"
}
function add(n,   i, k, d) {
	if (n in closure || !(n in path)) return
	closure[n] = 1
	k = split(deps[n], d, " ")
	for (i = 1; i <= k; i++) add(modname(d[i]))
	k = split(soft[n], d, " ")
	for (i = 1; i <= k; i++) add(norm(d[i]))
}

FILENAME == ARGV[1] {
	sub(/#.*/, "")
	for (i = 1; i <= NF; i++) pats[++npat] = norm($i)
	next
}
FILENAME == ARGV[2] {
	p = $1; sub(/:$/, "", p)
	n = modname(p)
	path[n] = p; names[++nmods] = n
	$1 = ""; deps[n] = $0
	next
}
FILENAME == ARGV[3] && $1 == "softdep" {
	n = norm($2)
	for (i = 3; i <= NF; i++) if ($i != "pre:" && $i != "post:") soft[n] = soft[n] " " $i
	next
}
END {
	nsel = 0
	for (p = 1; p <= npat; p++) {
		pat = pats[p]; neg = (substr(pat, 1, 1) == "!")
		if (neg) pat = substr(pat, 2)
		re = glob2re(pat); hit = 0
		if (neg) {
			for (i = 1; i <= nsel; i++) if (sel[i] ~ re) { sel[i] = ""; hit = 1 }
		} else {
			# modules.dep order is stable (modules.order), good enough for globs
			for (i = 1; i <= nmods; i++) {
				n = names[i]
				if (n ~ re) { hit = 1; if (!(n in chosen)) { chosen[n] = 1; sel[++nsel] = n } }
			}
		}
		if (!hit) print "nomatch " pats[p]
	}
	for (i = 1; i <= nsel; i++) if (sel[i] != "") { print "load " sel[i]; add(sel[i]) }
	for (n in closure) print "file " path[n]
}
