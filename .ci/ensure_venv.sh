#!/usr/bin/env bash
# Creates .venv/ at the repository root when missing and installs the package
# with its test extra from the pinned constraints. Safe to run repeatedly: a
# stamp records the hash of setup.py + constraints.txt, so an up-to-date
# environment is left alone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
stamp=.venv/.installed-from
want="$(cat setup.py constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing the pinned stack into .venv/ (a few minutes the first time)" >&2
  # Some machines list local package indexes that pip warns about once per
  # package; those lines carry no information.
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]' 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$want" > "$stamp"
fi
