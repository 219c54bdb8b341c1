#!/usr/bin/env bash
# Create (or refresh) .venv-peers: the "peer" tools gentle.lb is measured against.
#
# The peers are other projects' Ansible modules -- F5's bigip_pool_member
# (f5networks.f5_modules, bundled in PyPI's `ansible` package) and
# community.general's haproxy module -- run unchanged through their own
# ansible-playbook. They live in a venv of their own so their ansible-core
# version never mixes with the one gentle.lb is developed against (.venv).
#
# Idempotent: an existing venv that already imports what we need is left alone
# (pass --force to rebuild it). Used by the F5 emulator compatibility test
# and by the HAProxy benchmark.
#
#   lab/peers/setup.sh [--force]
#   PEERS_VENV=/path/to/venv lab/peers/setup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${PEERS_VENV:-$root/.venv-peers}"
force=0
[ "${1:-}" = "--force" ] && force=1

# Python 3.13 from pyenv when present (the project's reference interpreter),
# else whatever python3 is on PATH.
if command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -qx '3.13.0'; then
    py=(env PYENV_VERSION=3.13.0 python3.13)
elif command -v python3.13 >/dev/null 2>&1; then
    py=(python3.13)
else
    py=(python3)
fi

# What "ready" means: ansible-playbook runs and both peer collections resolve.
ready() {
    [ -x "$venv/bin/ansible-playbook" ] || return 1
    "$venv/bin/ansible-doc" -t module f5networks.f5_modules.bigip_pool_member >/dev/null 2>&1 || return 1
    "$venv/bin/ansible-doc" -t module community.general.haproxy >/dev/null 2>&1 || return 1
}

if [ "$force" = 1 ]; then
    rm -rf "$venv"
elif ready; then
    echo "peers: $venv is ready"
    exit 0
fi

[ -x "$venv/bin/python" ] || "${py[@]}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# `ansible` (the community package) bundles f5networks.f5_modules and
# community.general. The F5 modules import these at run time but the package
# does not declare them: requests for the REST client (bigsuds is not needed).
"$venv/bin/python" -m pip install --quiet ansible requests

ready || { echo "peers: $venv was built but the peer modules do not resolve" >&2; exit 1; }
echo "peers: $venv is ready"
