#!/bin/sh
# Capture real ipvsadm output for the parser tests (tests/unit/fixtures/ipvs).
#
#   lab/uml/capture_ipvs_fixtures.sh [OUTDIR]      (on the host)
#
# On the host it records what ipvsadm says on a kernel without IPVS (only
# when the host really has none: it must not load ip_vs on a host), then
# re-runs itself inside the user-mode Linux guest (lab/uml/run --netns-lab)
# with "--in-guest OUTDIR".  In the guest it builds a varied table, makes
# traffic through the netns lab so the counters, connection entries and
# persistence templates are real, and saves every listing and every error
# case.  Scratch files stay on the guest's /run (tmpfs); only the finished
# fixtures are copied to OUTDIR.  See tests/unit/fixtures/ipvs/README.md.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${LAB_PYTHON:-/usr/bin/python3}

# ---------------------------------------------------------------- helpers
# rec NAME ARGV... : run ARGV, keep argv/rc/stdout/stderr as $W/NAME.*
# (turned into JSON records by one python call at the end: every process
# start costs ~0.3 s under UML, so python is not run per case).
rec() {
    name=$1
    shift
    printf '%s\0' "$@" >"$W/$name.argv"
    set +e
    "$@" >"$W/$name.out" 2>"$W/$name.err" </dev/null
    echo $? >"$W/$name.rc"
    set -e
}

# rec_stdin NAME FILE ARGV... : same, with FILE as standard input.
rec_stdin() {
    name=$1
    input=$2
    shift 2
    printf '%s\0' "$@" >"$W/$name.argv"
    cp "$input" "$W/$name.in"
    set +e
    "$@" >"$W/$name.out" 2>"$W/$name.err" <"$input"
    echo $? >"$W/$name.rc"
    set -e
}

# to_json OUTFILE NAME... : the records, in the given order, as a JSON list
# (with INDEX=1 in the environment: listing records, without stdout).
to_json() {
    out=$1
    shift
    "$PY" - "$W" "$out" "$@" <<'EOF'
import json, os, sys
w, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
def read(path):
    with open(path, "rb") as f:
        return f.read().decode()
records = []
for n in names:
    p = os.path.join(w, n)
    rec = {"name": n, "cmd": read(p + ".argv").split("\0")[:-1]}
    if os.path.exists(p + ".in"):
        rec["stdin"] = read(p + ".in")
    rec.update(rc=int(read(p + ".rc")), stdout=read(p + ".out"), stderr=read(p + ".err"))
    if os.environ.get("INDEX"):
        # Listings: the output is in its own file; name that file instead.
        rec["file"] = n[len("list_"):]
        del rec["stdout"], rec["name"]
    records.append(rec)
with open(out, "w") as f:
    json.dump(records, f, indent=2)
    f.write("\n")
EOF
}

# ------------------------------------------------------------------- host
if [ "${1:-}" != --in-guest ]; then
    OUT=${1:-$REPO/tests/unit/fixtures/ipvs}
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    W=$(mktemp -d)
    trap 'rm -rf "$W"' EXIT
    # "Kernel has no IPVS": only where ip_vs is neither loaded nor loadable,
    # because ipvsadm would otherwise modprobe it into the host kernel.
    if [ ! -e /proc/net/ip_vs ] && ! modinfo ip_vs >/dev/null 2>&1; then
        rec no_ipvs_kernel ipvsadm -Ln
        to_json "$W/host.json" no_ipvs_kernel
    else
        echo "host kernel has IPVS: not recording the no-IPVS case" >&2
    fi
    LAB_RS_COUNT=3 LAB_UDP=1 LAB_PORTS="80 53 8080 5060" \
        "$HERE/run" --netns-lab --timeout 600 -- "$0" --in-guest "$OUT"
    if [ -e "$W/host.json" ]; then
        # Merge the host record into the guest's environment errors.
        "$PY" - "$W/host.json" "$OUT/environment_errors.json" <<'EOF'
import json, sys
host = json.load(open(sys.argv[1]))
path = sys.argv[2]
records = [r for r in json.load(open(path)) if r["name"] != "no_ipvs_kernel"]
with open(path, "w") as f:
    json.dump(host + records, f, indent=2)
    f.write("\n")
EOF
    fi
    echo "fixtures written to $OUT"
    exit 0
fi

# ------------------------------------------------------------------ guest
OUT=$2
W=/run/capture
mkdir -p "$W/txt"
CLIENT="ip netns exec client"

# save FILE ARGV... : a listing fixture; its command and rc go to index.json.
LISTINGS=
save() {
    file=$1
    shift
    rec "list_$file" "$@"
    cp "$W/list_$file.out" "$W/txt/$file"
    if [ -s "$W/list_$file.err" ]; then
        echo "unexpected stderr from $*:" >&2
        cat "$W/list_$file.err" >&2
    fi
    LISTINGS="$LISTINGS list_$file"
}

{
    echo "kernel: $(uname -r) (user-mode Linux)"
    echo "ipvsadm: $(ipvsadm --version)"
    echo "package: $(dpkg-query -W -f '${Package} ${Version}' ipvsadm)"
    echo "captured: $(date -u +%Y-%m-%d)"
} >"$W/txt/VERSIONS"

# A table with only the lab's services is already there; an empty one first.
ipvsadm -C
save Ln_empty.txt ipvsadm -Ln
save Ln_exact_empty.txt ipvsadm -Ln --exact

# VIPs must be local addresses on the director for traffic to reach IPVS.
for a in 100 101 102; do ip addr add "10.0.0.$a/32" dev dummy0 2>/dev/null || true; done

I=ipvsadm
tbl() {
    ipvsadm "$@" || { echo "capture: table step failed: ipvsadm $*" >&2; exit 1; }
}
# NAT pool, like the lab's, with a drained server (weight 0) and thresholds.
tbl -A -t 10.0.0.100:80 -s rr
tbl -a -t 10.0.0.100:80 -r 172.16.1.2:80 -m -w 1
tbl -a -t 10.0.0.100:80 -r 172.16.2.2:80 -m -w 5 -x 100 -y 50
tbl -a -t 10.0.0.100:80 -r 172.16.3.2:80 -m -w 0
# UDP (its flow shows in -Lnc), and one-packet scheduling on another.
tbl -A -u 10.0.0.100:53 -s rr
tbl -a -u 10.0.0.100:53 -r 172.16.1.2:53 -m -w 1
tbl -a -u 10.0.0.100:53 -r 172.16.2.2:53 -m -w 1
# Persistence with a mask; one server drained.
tbl -A -t 10.0.0.101:80 -s wlc -p 300 -M 255.255.255.0
tbl -a -t 10.0.0.101:80 -r 172.16.1.2:80 -m -w 3
tbl -a -t 10.0.0.101:80 -r 172.16.2.2:80 -m -w 0
# Source hashing with fallback; only upper threshold on one server.
tbl -A -t 10.0.0.102:8080 -s sh -b sh-fallback,sh-port
tbl -a -t 10.0.0.102:8080 -r 172.16.1.2:8080 -m -w 1 -x 20
tbl -a -t 10.0.0.102:8080 -r 172.16.2.2:8080 -m -w 1
# Maglev hashing with flags; every tunnel type, and an IPv6 tunnel server
# in an IPv4 service (allowed for tunnels only).
tbl -A -t 10.0.0.103:443 -s mh -b mh-fallback,mh-port
tbl -a -t 10.0.0.103:443 -r 10.1.0.3 -i -w 2
tbl -a -t 10.0.0.103:443 -r 10.1.0.4 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
tbl -a -t 10.0.0.103:443 -r 10.1.0.5 -i -w 1 --tun-type gre --tun-csum
tbl -a -t 10.0.0.103:443 -r 10.1.0.6 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
tbl -a -t 10.0.0.103:443 -r '[2001:db8::5]:443' -i -w 1
# Direct routing, the maximum weight, and a local real server (lists as Route).
tbl -A -t 10.0.0.104:80 -s lc
tbl -a -t 10.0.0.104:80 -r 10.1.0.7 -g -w 65535
tbl -a -t 10.0.0.104:80 -r 127.0.0.1:80 -m -w 1
tbl -A -u 10.0.0.107:514 -s rr -o
tbl -a -u 10.0.0.107:514 -r 172.16.3.2:514 -m -w 1
# SIP persistence engine on UDP.
tbl -A -u 10.0.0.105:5060 -s rr -p 60 --pe sip
tbl -a -u 10.0.0.105:5060 -r 172.16.1.2:5060 -m -w 1
# SCTP.
tbl -A --sctp-service 10.0.0.106:3868 -s sed
tbl -a --sctp-service 10.0.0.106:3868 -r 10.1.0.8:3868 -g -w 2
tbl -a --sctp-service 10.0.0.106:3868 -r 172.16.1.2:3868 -m -w 1
# Firewall marks, IPv4 (persistent, masked) and IPv6.
tbl -A -f 1 -s sh -p 300
tbl -a -f 1 -r 10.1.0.9 -g -w 1
tbl -A -f 3 -s wrr -p 120 -M 255.255.0.0
tbl -a -f 3 -r 10.1.0.10 -g -w 4
tbl -A -f 2 -6 -s lc
tbl -a -f 2 -6 -r 2001:db8::10 -g -w 1
# IPv6 services; addresses given long-hand come back compressed.
tbl -A -t '[2001:db8::100]:443' -s wrr -p 600 -M 64
tbl -a -t '[2001:db8::100]:443' -r '[2001:db8::1]:443' -m -w 3
tbl -a -t '[2001:db8::100]:443' -r '[2001:db8::2]:8443' -m -w 0 -x 10 -y 5
tbl -a -t '[2001:db8::100]:443' -r '[2001:db8::3]:443' -g -w 1
tbl -A -u '[2001:DB8:0:0:0:0:0:100]:53' -s nq
tbl -a -u '[2001:db8::100]:53' -r '[2001:db8:0:0:0:0:0:abcd]:53' -m -w 2
# The remaining schedulers, one service each.
n=110
for s in dh fo ovf lblc lblcr; do
    tbl -A -t "10.0.0.$n:80" -s "$s"
    tbl -a -t "10.0.0.$n:80" -r 10.1.0.11:80 -g -w 1
    n=$((n + 1))
done

# ---- traffic: held connections (ActiveConn), closed ones (InActConn),
# a persistence template, a UDP flow, and enough bytes for abbreviations.
$CLIENT "$PY" "$HERE/holdconn.py" -n 2 --ready "$W/held1" --until "$W/release" --hold 120 10.0.0.100 80 >"$W/hold1.log" &
$CLIENT "$PY" "$HERE/holdconn.py" -n 1 --ready "$W/held2" --until "$W/release" --hold 120 10.0.0.101 80 >"$W/hold2.log" &
$CLIENT "$PY" "$HERE/holdconn.py" -n 1 --ready "$W/held3" --until "$W/release" --hold 120 10.0.0.102 8080 >"$W/hold3.log" &
$CLIENT "$PY" - <<'EOF'
import socket
# Two short HTTP requests (they end in TIME_WAIT: InActConn), a UDP
# datagram, and ~150 MB through rs1 so --stats without --exact abbreviates
# (values of 10^8 and more).
for _ in range(2):
    s = socket.create_connection(("10.0.0.100", 80), timeout=10)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
u.sendto(b"hello\n", ("10.0.0.100", 53))
u.recvfrom(100)
s = socket.create_connection(("10.0.0.102", 8080), timeout=30)
chunk = b"x" * 65535 + b"\n"
for _ in range(2300):
    s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
s.close()
EOF
for f in held1 held2 held3; do
    t=0
    while [ ! -e "$W/$f" ]; do
        t=$((t + 1))
        [ "$t" -le 300 ] || { echo "holdconn $f did not connect" >&2; exit 1; }
        sleep 0.1
    done
done
# The rate estimator runs every 2 s: give it a tick to see the traffic.
sleep 2.5

save Ln.txt ipvsadm -Ln
save Ln_exact.txt ipvsadm -Ln --exact
save Ln_stats.txt ipvsadm -Ln --stats
save Ln_stats_exact.txt ipvsadm -Ln --stats --exact
save Ln_rate_exact.txt ipvsadm -Ln --rate --exact
save Ln_thresholds.txt ipvsadm -Ln --thresholds
save Ln_persistent_conn.txt ipvsadm -Ln --persistent-conn
save Ln_tun_info.txt ipvsadm -Ln --tun-info
save Ln_nosort.txt ipvsadm -Ln --nosort
save Ln_service.txt ipvsadm -Ln --exact -t 10.0.0.100:80
save Ln_service_v6.txt ipvsadm -Ln --exact -t '[2001:db8::100]:443'
save Ln_service_fwmark.txt ipvsadm -Ln --exact -f 1
save Sn.txt ipvsadm -Sn
save Lnc.txt ipvsadm -Lnc
save Ln_timeout.txt ipvsadm -Ln --timeout
save Ln_daemon.txt ipvsadm -Ln --daemon

touch "$W/release"
wait

# ---- errors (reference §4), against the table above.
E=
err() {
    rec "$@"
    E="$E $1"
}
VS="-t 10.0.0.100:80"
# shellcheck disable=SC2086
{
err delete_missing_dest      $I -d $VS -r 172.16.9.2:80
err edit_missing_dest        $I -e $VS -r 172.16.9.2:80 -m -w 1
err duplicate_dest           $I -a $VS -r 172.16.1.2:80 -m -w 1
err dest_missing_service     $I -a -t 10.0.0.199:80 -r 172.16.1.2:80 -m
err dest_service_no_port     $I -a -t 10.0.0.100 -r 172.16.1.2:80 -m
err duplicate_service        $I -A $VS -s rr
err delete_missing_service   $I -D -t 10.0.0.199:80
err edit_missing_service     $I -E -t 10.0.0.199:80 -s rr
err list_missing_service     $I -Ln -t 10.0.0.199:80
err bad_scheduler            $I -A -t 10.0.0.198:80 -s bogus
err bad_pe                   $I -A -u 10.0.0.198:5060 -p 60 --pe bogus
err bad_rs_address           $I -a $VS -r 999.1.1.1:80 -m
err bad_rs_port              $I -a $VS -r 172.16.1.2:99999 -m
err bad_rs_v6_no_port        $I -a -t '[2001:db8::100]:443' -r '[2001:db8::9]' -m
err bad_vip                  $I -A -t 300.0.0.1:80
err v6_vip_no_brackets       $I -a -t 2001:db8::100:443 -r '[2001:db8::9]:443' -m
err negative_weight          $I -e $VS -r 172.16.1.2:80 -m -w -1
err weight_above_65535       $I -e $VS -r 172.16.1.2:80 -m -w 70000
}
# What -w 70000 left behind (Debian accepts weights above 65535), then undo.
save Ln_service_weight70000.txt ipvsadm -Ln -t 10.0.0.100:80
$I -e $VS -r 172.16.1.2:80 -m -w 1
# shellcheck disable=SC2086
{
err thresholds_inverted      $I -e $VS -r 172.16.1.2:80 -m -w 1 -x 10 -y 20
err v6_rs_in_v4_no_tunnel    $I -a $VS -r '[2001:db8::9]:80' -m
err dr_forces_service_port   $I -e -t '[2001:db8::100]:443' -r '[2001:db8::2]:8443' -w 7
err save_with_service        $I -Sn $VS
err noop_edit                $I -e $VS -r 172.16.1.2:80 -m -w 1
}
printf '%s\n' \
    "-a -t 10.0.0.100:80 -r 172.16.9.1:80 -m -w 1" \
    "-a -t 10.0.0.100:80 -r 172.16.1.2:80 -m -w 1" \
    "-a -t 10.0.0.100:80 -r 172.16.9.3:80 -m -w 1" >"$W/restore.in"
rec_stdin restore_middle_line_fails "$W/restore.in" $I -R
E="$E restore_middle_line_fails"
save Ln_service_after_restore.txt ipvsadm -Ln -t 10.0.0.100:80

# Permission denied: an unprivileged user (nobody) in the guest.
rec not_root setpriv --reuid=65534 --regid=65534 --clear-groups ipvsadm -Ln
rec not_root_write setpriv --reuid=65534 --regid=65534 --clear-groups ipvsadm -a -t 10.0.0.100:80 -r 172.16.9.9:80 -m

# shellcheck disable=SC2086
to_json "$W/txt/errors.json" $E
to_json "$W/txt/environment_errors.json" not_root not_root_write
# shellcheck disable=SC2086
INDEX=1 to_json "$W/txt/index.json" $LISTINGS
cp "$W"/txt/* "$OUT/"
echo "captured $(ls "$W/txt" | wc -l) files"
