#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/gentle/lb as
# a real directory (it resolves symlinks).  Copy what the built collection holds
# (lab/ and bench/ are build_ignore'd development tools, not collection content)
# into a temporary tree and run the sanity tests there.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
pythons=${SANITY_PYTHONS:-3.13}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/gentle/lb
mkdir -p "$dest"
cd "$repo"
git ls-files -co --exclude-standard | grep -v -E '^(lab|bench|\.ci)/' | tar -cf - -T - | tar -xf - -C "$dest"

# ansible-test bootstraps pip in its sanity virtualenvs with a script from
# ci-files.testing.ansible.com, which is not reachable here: give it ours.
pip_version=$("$repo/.venv/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
mkdir -p ~/.ansible/test/cache
cp "$repo/tests/sanity/get_pip.py" ~/.ansible/test/cache/get_pip_${pip_version//./_}.py

cd "$dest"
for python in $pythons; do
  echo "== ansible-test sanity --python $python"
  "$repo/.venv/bin/ansible-test" sanity --python "$python" --local --color no "$@"
done
