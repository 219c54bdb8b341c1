#!/bin/sh
# PID 1 of the user-mode Linux guest started by lab/uml/run.  Not meant to be
# run by hand.
#
# The guest's root file system is the host's "/" (hostfs), so every path here
# is also a host path: anything written outside the tmpfs mounts made below
# lands on the host.  The kernel hands us unknown "NAME=value" boot parameters
# as environment variables; lab/uml/run passes:
#   UML_CTL          host directory shared with lab/uml/run (command, env, status, output)
#   UML_PRIVATE_TMP  1 = give the guest its own tmpfs /tmp
#   UML_NETNS_LAB    1 = build the netns lab (lab/uml/netns-lab.sh) before the command
#   UML_AGENT        1 = start lab/uml/agent.py (mailbox UML_CTL/agent) before the command
#   UML_LAB_DIR      the directory holding this script and its helpers
#
# Protocol with lab/uml/run (all files in UML_CTL):
#   env.sh    sourced before the command (exports, cwd)
#   cmd.sh    the command, already shell-quoted, run with sh
#   stdout, stderr   the command's output, tailed live by the host
#   setup.log        output of the steps below (kept out of the command's output)
#   status           the exit status, written last (its absence means "crashed")

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys

# /run must be private: the host's /run is otherwise shared, and "ip netns add"
# would create /run/netns/* on the host.  keepalived's pid files live here too.
mount -t tmpfs -o mode=755 tmpfs /run

# Reach the control directory through a private path first, so that a tmpfs
# over /tmp (where the control directory usually lives on the host) cannot
# hide it.
CTL=/run/uml/ctl
mkdir -p "$CTL"
mount --bind "$UML_CTL" "$CTL"
exec >"$CTL/setup.log" 2>&1 </dev/null

fail() {
    echo "guest setup failed: $*"
    echo 125 >"$CTL/status.tmp" && mv "$CTL/status.tmp" "$CTL/status"
    poweroff -f
}

# Python's multiprocessing (used by Ansible) needs a writable /dev/shm; /dev is
# the guest's own devtmpfs, which has none.
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail "tmpfs on /dev/shm"
mount -t devpts -o mode=620,ptmxmode=666 devpts /dev/pts || true

if [ "$UML_PRIVATE_TMP" = 1 ]; then
    mount -t tmpfs -o mode=1777 tmpfs /tmp || fail "tmpfs on /tmp"
fi

# Kernel modules: the UML kernel's modules are in /usr/lib/uml/modules/<ver>,
# but kmod looks in /lib/modules/<ver>, which may not even exist on the host
# (and creating it would write to the host).  So: a private module root on
# /run, and a stand-in for the kmod binary, bind-mounted over it in the guest
# only, that points modprobe and modinfo there.  Every way of calling them
# works: "modprobe" from PATH, /sbin/modprobe run by ipvsadm or keepalived
# when IPVS looks missing, and the kernel's own on-demand module loading.
KVER=$(uname -r)
KMOD=$(readlink -f /sbin/modprobe)
mkdir -p /run/uml/modroot/lib/modules /run/uml/kmod
ln -s "/usr/lib/uml/modules/$KVER" "/run/uml/modroot/lib/modules/$KVER"
cp "$KMOD" /run/uml/kmod/kmod || fail "copy $KMOD"
for tool in modprobe modinfo insmod rmmod lsmod depmod; do
    ln -s kmod "/run/uml/kmod/$tool"
done
cat >/run/uml/kmod-wrapper <<'WRAPPER'
#!/bin/sh
# The guest's stand-in for kmod (lab/uml/guest-init.sh): kmod picks its tool
# by the name it is called as, so dispatch on that name.
name=${0##*/}
case $name in
    modprobe) exec /run/uml/kmod/modprobe -d /run/uml/modroot "$@" ;;
    modinfo) exec /run/uml/kmod/modinfo -b /run/uml/modroot "$@" ;;
    *) exec "/run/uml/kmod/$name" "$@" ;;
esac
WRAPPER
chmod 755 /run/uml/kmod-wrapper
mount --bind /run/uml/kmod-wrapper "$KMOD" || fail "bind-mount the kmod wrapper"

hostname uml-lab

# One modprobe call for everything: every process start is slow under UML.
# ipv6 first so IPv6 services and destinations work; the schedulers so any
# "-s NAME" works without relying on on-demand loading.
modprobe -a ipv6 dummy veth ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc ip_vs_lc \
    ip_vs_sh ip_vs_mh ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_dh \
    ip_vs_lblc ip_vs_lblcr ip_vs_pe_sip || fail "modprobe"

ip link set lo up || fail "lo up"
ip link add dummy0 type dummy || fail "dummy0"
ip addr add 10.0.0.254/24 dev dummy0 || fail "dummy0 address"
ip link set dummy0 up || fail "dummy0 up"

# The lab sees the caller's environment too: its LAB_* knobs come from there.
if [ "$UML_NETNS_LAB" = 1 ]; then
    env -i /bin/sh -c '. "$1/env.sh" && exec "$2/netns-lab.sh" up' sh "$CTL" "$UML_LAB_DIR" ||
        fail "netns lab (see above)"
fi

# The agent serves the host's requests (lab/uml/connection/uml.py) with the
# caller's environment, as the command gets it; the command starts once it
# listens, so the first request never waits for a Python start.
if [ "$UML_AGENT" = 1 ]; then
    env -i /bin/sh -c '. "$1/env.sh" && exec /usr/bin/python3 "$2/agent.py" "$1/agent"' sh "$CTL" \
        "$UML_LAB_DIR" >"$CTL/agent.log" 2>&1 </dev/null &
    tries=0
    while [ ! -e "$CTL/agent/ready" ]; do
        tries=$((tries + 1))
        [ "$tries" -le 600 ] || fail "the agent did not start in 60 s: $(cat "$CTL/agent.log")"
        sleep 0.1
    done
fi

echo "guest ready"

# Run the command with the caller's environment (only: "env -i" drops the
# boot parameters the kernel put in ours) and working directory.
env -i /bin/sh -c '. "$1/env.sh" && exec /bin/sh "$1/cmd.sh"' sh "$CTL" \
    >"$CTL/stdout" 2>"$CTL/stderr" </dev/null
rc=$?

# Write then rename, so the host never reads a half-written status.
echo "$rc" >"$CTL/status.tmp" && mv "$CTL/status.tmp" "$CTL/status"
poweroff -f
