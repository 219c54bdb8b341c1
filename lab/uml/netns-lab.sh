#!/bin/sh
# Build the IPVS netns lab inside the user-mode Linux guest (never on a host:
# it creates namespaces, veths, routes and an IPVS service).  lab/uml/run
# --netns-lab calls "netns-lab.sh up" before the command; a command may also
# call it itself.
#
#   client netns   eth0 192.168.1.2/24, default via 192.168.1.1
#   clientN netns  (N = 2..LAB_CLIENTS) eth0 192.168.N.2/24, default via 192.168.N.1
#   root netns     the director: veth-client 192.168.1.1/24 (veth-clientN 192.168.N.1/24),
#                  veth-rsN 172.16.N.1/24, VIP(s) on dummy0, ip_forward=1
#   rsN netns      eth0 172.16.N.2/24, default via 172.16.N.1,
#                  lab/uml/rs_server.py answering "rsN" on TCP+UDP LAB_PORTS
#   IPVS           TCP VIP:80, NAT (-m), weight 1, to every rsN:80
#                  (+ the same UDP service when LAB_UDP=1)
#
# Knobs (environment): LAB_RS_COUNT (2; up to 9), LAB_CLIENTS (1; up to 9), LAB_VIP (10.0.0.100),
# LAB_SCHED (rr), LAB_PORTS (80; space-separated, served by every rsN),
# LAB_UDP (0), LAB_PYTHON (/usr/bin/python3: present without any venv).
# Server logs and ready files are in /run/netns-lab.
set -eu

if [ "${1:-}" != up ]; then
    echo "usage: $0 up" >&2
    exit 2
fi
if ! grep -q '^vendor_id.*User Mode Linux' /proc/cpuinfo; then
    echo "$0: refusing to run outside the user-mode Linux guest" >&2
    exit 2
fi

HERE=$(cd "$(dirname "$0")" && pwd)
N=${LAB_RS_COUNT:-2}
VIP=${LAB_VIP:-10.0.0.100}
SCHED=${LAB_SCHED:-rr}
PORTS=${LAB_PORTS:-80}
PY=${LAB_PYTHON:-/usr/bin/python3}
STATE=/run/netns-lab
mkdir -p "$STATE"

sysctl -qw net.ipv4.ip_forward=1

# veth_ns NETNS HOSTSIDE HOSTADDR NSADDR GATEWAY
veth_ns() {
    ip netns add "$1"
    ip link add "$2" type veth peer name eth0 netns "$1"
    ip addr add "$3" dev "$2"
    ip link set "$2" up
    ip -n "$1" link set lo up
    ip -n "$1" addr add "$4" dev eth0
    ip -n "$1" link set eth0 up
    ip -n "$1" route add default via "$5"
}

veth_ns client veth-client 192.168.1.1/24 192.168.1.2/24 192.168.1.1
# More clients, each with its own address: one client address talking to two
# VIPs that NAT to the same real server can pick the same source port for
# both, and the real server then sees one connection where there are two.
c=2
while [ "$c" -le "${LAB_CLIENTS:-1}" ]; do
    veth_ns "client$c" "veth-client$c" "192.168.$c.1/24" "192.168.$c.2/24" "192.168.$c.1"
    c=$((c + 1))
done

i=1
while [ "$i" -le "$N" ]; do
    veth_ns "rs$i" "veth-rs$i" "172.16.$i.1/24" "172.16.$i.2/24" "172.16.$i.1"
    port_args=
    for p in $PORTS; do port_args="$port_args --port $p"; done
    # Started in the background, all at once: each python start costs ~0.3 s here.
    # shellcheck disable=SC2086
    ip netns exec "rs$i" "$PY" "$HERE/rs_server.py" --name "rs$i" $port_args \
        --ready "$STATE/rs$i.ready" >"$STATE/rs$i.log" 2>&1 &
    echo $! >"$STATE/rs$i.pid"
    i=$((i + 1))
done

ip addr add "$VIP/32" dev dummy0
ipvsadm -A -t "$VIP:80" -s "$SCHED"
if [ "${LAB_UDP:-0}" = 1 ]; then ipvsadm -A -u "$VIP:80" -s "$SCHED"; fi
i=1
while [ "$i" -le "$N" ]; do
    ipvsadm -a -t "$VIP:80" -r "172.16.$i.2:80" -m -w 1
    if [ "${LAB_UDP:-0}" = 1 ]; then ipvsadm -a -u "$VIP:80" -r "172.16.$i.2:80" -m -w 1; fi
    i=$((i + 1))
done

# Wait (up to 30 s) until every server listens.
tries=0
i=1
while [ "$i" -le "$N" ]; do
    if [ -e "$STATE/rs$i.ready" ]; then
        i=$((i + 1))
        continue
    fi
    tries=$((tries + 1))
    # Give up at once if the server died (bad LAB_PYTHON, port in use...).
    if [ "$tries" -gt 300 ] || ! kill -0 "$(cat "$STATE/rs$i.pid")" 2>/dev/null; then
        echo "$0: rs$i did not start:" >&2
        cat "$STATE/rs$i.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "netns lab up: client 192.168.1.2 -> VIP $VIP:80 ($SCHED) -> $N real servers"
