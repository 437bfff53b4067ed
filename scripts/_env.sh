# Sourced by the set-up scripts: makes .venv inside the checkout (ignored by git) and
# installs mtrec with its test extra into it. Re-installs only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mtrec needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
# A venv whose creation was interrupted (no working pip) is made again rather than left to fail.
if [ -d .venv ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "Removing the incomplete .venv" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$PYTHON" --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.mtrec-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing mtrec and its dependencies into .venv (first run: a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The distribution was called `mtrec` before it became `mtrec-keras`: drop a stale install of it.
  .venv/bin/python -m pip uninstall --quiet --yes mtrec 2>/dev/null || true
  .venv/bin/python -m pip install --quiet -e ".[test]"
  rm -f .venv/.mtrec-installed-*
  touch "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
