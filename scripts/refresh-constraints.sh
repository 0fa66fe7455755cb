#!/usr/bin/env bash
# Refresh constraints.txt: resolve every dependency anew (newest releases that pyproject.toml's ranges
# allow) in a throw-away venv, write the resolved set to constraints.txt, then run the test suite in
# that venv. Commit the new constraints.txt only if the tests pass.
#   bash scripts/refresh-constraints.sh            # torch stays at the pinned version
#   TORCH=2.14.1 bash scripts/refresh-constraints.sh
set -euo pipefail
cd "$(dirname "$0")/.."
torch="${TORCH:-$(sed -n 's/^torch==//p' constraints.txt)}"
venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q "torch==$torch"
pip install -q -e ".[dev]"
{
  sed -n '1,2p' constraints.txt
  # a local build tag (2.13.0+cpu) is dropped: torch==2.13.0 matches any build of that release
  pip freeze --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
git --no-pager diff --stat constraints.txt || true
python -m pytest -q
echo "tests passed with the refreshed pins: review 'git diff constraints.txt' and commit it"
