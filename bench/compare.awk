# compare.awk — what a collector received against flowgen's ground truth.
#
#   nfdump -R DIR -q -N -6 -o 'fmt:%pr|%sa|%sp|%da|%dp|%pkt|%byt' | tr -d ' ' |
#     awk -f compare.awk TRUTH.tsv -
#
# TRUTH.tsv (flowgen -t): proto src sport dst dport vlan packets ip_bytes
#
# Prints one line of key=value pairs:
#   records     flow records the collector stored (one per nfdump line)
#   packets     sum of their packet counts
#   bytes       sum of their octet counts
#   truth_lines lines of the truth file (flow keys, VLAN included)
#   truth_keys  keys after folding (see below)
#   keys_seen   truth keys that at least one record covers
#   keys_exact  truth keys whose records sum to exactly the true packets and bytes
#   keys_extra  record keys that are not in the truth at all
#   keys_packets_exact  truth keys whose records sum to exactly the true packets
#               (bytes aside: see bench/live.sh on frames shorter than their IP length)
#
# Key folding, so that every exporter is judged the same way: the VLAN is left out
# (softflowd and pmacctd's default aggregation do not export it), and for ICMP and
# ICMPv6 the ports are left out (exporters encode type/code differently: nfdump
# prints "8.0", softflowd exports 0 for ICMPv6). IPv6 addresses are normalised to
# eight lower-case groups without leading zeros, flowgen's spelling.

function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }

function group(g) { sub(/^0+/, "", g); return g == "" ? "0" : g }

function v6norm(a,    i, n, nl, nr, out, pos, left, right, L, R, G) {
    a = tolower(a)
    pos = index(a, "::")
    if (pos == 0) {
        n = split(a, G, ":")
        out = group(G[1])
        for (i = 2; i <= n; i++) out = out ":" group(G[i])
        return out
    }
    left = substr(a, 1, pos - 1)
    right = substr(a, pos + 2)
    nl = (left == "") ? 0 : split(left, L, ":")
    nr = (right == "") ? 0 : split(right, R, ":")
    out = ""
    for (i = 1; i <= nl; i++) out = out (out == "" ? "" : ":") group(L[i])
    for (i = 0; i < 8 - nl - nr; i++) out = out (out == "" ? "" : ":") "0"
    for (i = 1; i <= nr; i++) out = out ":" group(R[i])
    return out
}

function protonum(p) {
    if (p ~ /^[ \t]*[0-9]+[ \t]*$/) return p + 0
    p = toupper(trim(p))
    if (p == "TCP") return 6
    if (p == "UDP") return 17
    if (p == "ICMP") return 1
    if (p == "ICMP6" || p == "IPV6-ICMP") return 58
    return p
}

function key(proto, src, sport, dst, dport) {
    if (proto == 1 || proto == 58) { sport = ""; dport = "" }
    if (index(src, ":")) { src = v6norm(src); dst = v6norm(dst) }
    return proto "|" src "|" sport "|" dst "|" dport
}

BEGIN { FS = "\t"; truth_lines = 0; records = 0; packets = 0; bytes = 0; second = 0 }

# First file: the truth (tab-separated).
FNR == NR {
    if ($1 == "" || $1 ~ /^#/) next
    truth_lines++
    k = key($1 + 0, $2, $3 + 0, $4, $5 + 0)
    if (!(k in tp)) truth_keys++
    tp[k] += $7
    tb[k] += $8
    next
}

# Second input: nfdump records ('|'-separated, padded with spaces).
!second { second = 1; FS = "|"; $0 = $0 }
{
    if (NF < 7) next
    records++
    packets += $6
    bytes += $7
    k = key(protonum($1), $2, $3 + 0, $4, $5 + 0)
    rp[k] += $6
    rb[k] += $7
}

END {
    keys_seen = 0; keys_exact = 0; keys_extra = 0; keys_packets_exact = 0
    for (k in tp) {
        if (k in rp) {
            keys_seen++
            if (rp[k] == tp[k]) keys_packets_exact++
            if (rp[k] == tp[k] && rb[k] == tb[k]) keys_exact++
        }
    }
    for (k in rp) if (!(k in tp)) keys_extra++
    printf "records=%d packets=%.0f bytes=%.0f truth_lines=%d truth_keys=%d keys_seen=%d keys_exact=%d keys_extra=%d keys_packets_exact=%d\n",
        records, packets, bytes, truth_lines, truth_keys, keys_seen, keys_exact, keys_extra, keys_packets_exact
}
