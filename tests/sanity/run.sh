#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/gentle/lb as
# a real directory (it resolves symlinks).  Copy what the built collection holds
# (lab/ and bench/ are build_ignore'd development tools, not collection content;
# their own tests in tests/lab and tests/unit/lab go with them)
# into a temporary tree and run the sanity tests there.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# The controller's Python gets every sanity test; the other Pythons the modules
# claim to support (3.9 and newer on the managed node) get the version-specific
# ones: compile and import.
controller_python=3.13
other_pythons=${SANITY_OTHER_PYTHONS-3.9 3.10 3.11 3.12}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/gentle/lb
mkdir -p "$dest"
cd "$repo"
git ls-files -co --exclude-standard | grep -v -E '^(lab|bench|\.ci|tests/lab|tests/unit/lab)/' \
  | while read -r path; do if [ -e "$path" ]; then printf '%s\n' "$path"; fi; done \
  | tar -cf - -T - | tar -xf - -C "$dest"

# ansible-test bootstraps pip in its sanity virtualenvs with a script from
# ci-files.testing.ansible.com, which is not reachable here: give it ours.
pip_version=$("$repo/.venv/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
mkdir -p "$HOME/.ansible/test/cache"
cp "$repo/tests/sanity/get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

# Make every pyenv interpreter findable as pythonX.Y: ansible-test runs them
# with a cleaned environment in which pyenv's shims cannot pick a version.
for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin; do
  [ -d "$dir" ] && PATH="$dir:$PATH"
done
export PATH

cd "$dest"
echo "== ansible-test sanity --python $controller_python"
"$repo/.venv/bin/ansible-test" sanity --python "$controller_python" --local --color no "$@"
for python in $other_pythons; do
  echo "== ansible-test sanity --python $python --test compile --test import"
  "$repo/.venv/bin/ansible-test" sanity --python "$python" --local --color no --test compile --test import "$@"
done
