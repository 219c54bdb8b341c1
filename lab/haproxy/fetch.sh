#!/bin/sh
# Fetch a newer Debian suite's HAProxy and the libraries it links against
# (from that same suite), unpack them privately under .cache/haproxy-<line>/root,
# and write a wrapper .cache/haproxy-<line>/haproxy that starts the binary
# through the unpacked dynamic loader.  Nothing on the system is installed or
# changed: apt runs with its own sources file, lists and cache directories.
#
# Usage: lab/haproxy/fetch.sh <line> [--force]      line: 3.0 or 3.2
#
#   3.0  HAProxy 3.0 LTS from Debian trixie (13)
#   3.2  HAProxy 3.2 LTS from Debian forky (testing; trixie-backports and
#        trixie carry no 3.2)
#
# Idempotent: exits at once when the wrapper already reports <line>.x, and
# only rewrites the wrapper when the packages are already unpacked; --force
# downloads and unpacks again.  Needs root (apt-get), apt, dpkg and flock,
# and bookworm's debian-archive-keyring (it carries the newer suites' keys).
set -eu

LINE=${1:-}
FORCE=no
[ "${2:-}" = "--force" ] && FORCE=yes

# Per line: the suite, and haproxy plus every library its binary (and libc's
# loader) needs, all from that suite: bookworm's libc is too old for the
# newer suites' binaries (GLIBC symbol versions).  check_libraries below
# names any that is missing.
case "$LINE" in
    3.0)
        SUITE=trixie
        PACKAGES="haproxy libc6 libssl3t64 liblua5.4-0 libpcre2-8-0 libjemalloc2
 libopentracing-c-wrapper0t64 libopentracing1 libstdc++6 libgcc-s1 libcrypt1
 libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1
 zlib1g"
        ;;
    3.2)
        SUITE=forky
        PACKAGES="haproxy libc6 libssl3t64 liblua5.4-0 libpcre2-8-0 libjemalloc2
 libopentracing-c-wrapper0t64 libopentracing1 libstdc++6 libgcc-s1 libcrypt1
 zlib1g libzstd1"
        ;;
    *)
        echo "usage: $0 3.0|3.2 [--force]" >&2
        exit 2
        ;;
esac

REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="$REPO_ROOT/.cache/haproxy-$LINE"
ROOT="$CACHE/root"
DEBS="$CACHE/debs"
APT="$CACHE/apt"
SOURCES="$APT/$SUITE.sources"   # apt only reads deb822 files ending in .sources
WRAPPER="$CACHE/haproxy"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf 'fetch-%s: %s\n' "$LINE" "$*" >&2; }

# The wrapper works when it is the one this script writes (an older script's
# wrapper is replaced) and the binary behind it reports <line>.x.
wrapper_ok() {
    [ -x "$WRAPPER" ] && [ "$(cat "$WRAPPER")" = "$(wrapper_text)" ] \
        && "$WRAPPER" -v 2>/dev/null \
        | grep -q "^HAProxy version $(printf '%s' "$LINE" | sed 's/\./\\./')\."
}

# Every URI of the host's apt sources (deb822 "URIs:" and one-line "deb").
host_uris() {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p'
}

# The first host URI whose path ends in $1 ("debian" or "debian-security"),
# else deb.debian.org: use the mirror (and proxy policy) the machine uses.
mirror_for() {
    uri=$(host_uris | grep -E "^(https?|file)://.*/$1/?\$" | head -n 1 || true)
    uri=${uri:-http://deb.debian.org/$1}
    printf '%s\n' "${uri%/}"
}

write_sources() {
    mirror=$(mirror_for debian)
    security=$(mirror_for debian-security)
    log "mirror $mirror, security $security"
    cat > "$SOURCES" <<SRC
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: $KEYRING

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: $KEYRING
SRC
}

# apt-get with private state everywhere it would otherwise write (lists,
# binary caches), and without the host's pins (they could hide the suite).
apt_private() {
    apt-get -q \
        -o Dir::Etc::sourcelist="$SOURCES" \
        -o Dir::Etc::sourceparts=/dev/null \
        -o Dir::Etc::preferences=/dev/null \
        -o Dir::Etc::preferencesparts=/dev/null \
        -o Dir::State::Lists="$APT/lists" \
        -o Dir::Cache="$APT/cache" \
        -o APT::Sandbox::User=root \
        "$@"
}

fetch_and_unpack() {
    mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$DEBS"
    write_sources
    log "apt-get update ($SUITE)"
    apt_private update >&2
    log "apt-get download"
    # shellcheck disable=SC2086  # PACKAGES is a word list on purpose
    (cd "$DEBS" && rm -f ./*.deb && apt_private download $PACKAGES >&2)
    log "unpacking into $ROOT"
    rm -rf "$ROOT.tmp"
    mkdir -p "$ROOT.tmp"
    for deb in "$DEBS"/*.deb; do
        dpkg -x "$deb" "$ROOT.tmp"
    done
    rm -rf "$ROOT"
    mv "$ROOT.tmp" "$ROOT"    # appears complete or not at all
}

# The wrapper resolves its own directory so the checkout can be moved.
# --argv0 names the wrapper as the program: in master-worker mode (-W) the
# master re-executes argv[0] at start and on every reload, and must come back
# through the unpacked loader and libraries, not as the bare binary (which
# the host's loader cannot start).
wrapper_text() {
    cat <<WRAP
#!/bin/sh
# Generated by lab/haproxy/fetch.sh $LINE: run $SUITE's haproxy through the
# unpacked $SUITE loader and libraries, never the host's.
WRAP
    cat <<'WRAP'
here=$(cd "$(dirname "$0")" && pwd)
root="$here/root"
libs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
exec "$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$libs" \
    --argv0 "$here/$(basename "$0")" "$root/usr/sbin/haproxy" "$@"
WRAP
}

write_wrapper() {
    wrapper_text > "$WRAPPER.tmp"
    chmod 755 "$WRAPPER.tmp"
    mv "$WRAPPER.tmp" "$WRAPPER"
}

# Fail loudly, naming them, if shared libraries are still missing.
check_libraries() {
    missing=$("$ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
        --library-path "$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu" \
        --list "$ROOT/usr/sbin/haproxy" | grep 'not found' || true)
    if [ -n "$missing" ]; then
        log "missing libraries (add their $SUITE packages to PACKAGES for $LINE):"
        printf '%s\n' "$missing" >&2
        exit 1
    fi
}

if [ "$FORCE" = no ] && wrapper_ok; then
    "$WRAPPER" -v | head -n 1
    exit 0
fi

# Parallel test runs may all ask for the same line at once: one fetches, the
# others wait for it and then find the wrapper working.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ "$FORCE" = no ] && wrapper_ok; then
    "$WRAPPER" -v | head -n 1
    exit 0
fi

if [ "$FORCE" = yes ] || [ ! -x "$ROOT/usr/sbin/haproxy" ]; then
    fetch_and_unpack
else
    log "already unpacked in $ROOT"
fi
check_libraries
write_wrapper
if ! wrapper_ok; then
    # A suite that moved on to a newer HAProxy line ends here: pick a suite
    # that still carries $LINE (or a snapshot mirror) in the case above.
    log "unpacked haproxy does not report version $LINE.x ($SUITE moved on?):"
    "$WRAPPER" -vv >&2 || true
    exit 1
fi
"$WRAPPER" -vv | head -n 1
