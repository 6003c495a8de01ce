#!/usr/bin/env bash
# `make test-cloud-versions`: for each environment named (vertex-tf2.17, floor), a Python 3.10
# virtual environment under DIR/NAME with the project installed against cloud_versions/NAME.txt,
# then the trainer, export and predict tests in it. The environments run one after the other;
# each keeps its `pip freeze` (DIR/NAME/freeze.txt) and its test log (DIR/NAME/pytest.log).
# `cross` (after vertex-tf2.17) runs cloud_versions/cross.sh with HOST_PYTHON (default
# python3): trained in the container's versions, exported at the host's, served at TF 2.17.
# Every test runs (no -x); the exit code is non-zero when any environment failed.
#
#   [HOST_PYTHON=...] cloud_versions/run.sh DIR PYTHON TIMEOUT_S "ENV ..." TEST...
set -uo pipefail
cd "$(dirname "$0")/.."

dir=$1 python=$2 timeout_s=$3 envs=$4
shift 4
tests=("$@")

if [ -z "$python" ] || ! "$python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  python=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.10*/bin/python3.10 2>/dev/null | tail -n 1)
fi
if [ -z "$python" ] || ! "$python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  echo "no Python 3.10 found: set CLOUD_VERSIONS_PYTHON" >&2
  exit 2
fi

mkdir -p "$dir"
status=0
summary=()
for name in $envs; do
  if [ "$name" = cross ]; then  # not an environment: the cloud's mix of versions, end to end
    start=$(date +%s)
    timeout "$timeout_s" bash cloud_versions/cross.sh "$dir" "${HOST_PYTHON:-python3}" 2>&1 | tee "$dir/cross.log"
    rc=${PIPESTATUS[0]}
    summary+=("cross: $(($(date +%s) - start)) s, exit $rc")
    [ "$rc" -eq 0 ] || status=1
    continue
  fi
  constraints=cloud_versions/$name.txt
  venv=$dir/$name
  if [ ! -f "$constraints" ]; then echo "no $constraints" >&2; status=2; continue; fi
  start=$(date +%s)
  echo "== $name: building $venv with $python and $constraints"
  # uv resolves what pip would (the newest that fits) in seconds where pip can backtrack for
  # many minutes over apache-beam[gcp]'s Google Cloud clients.
  if [ ! -x "$venv/bin/uv" ]; then
    "$python" -m venv "$venv" && "$venv/bin/python" -m pip install -qq uv || { status=1; continue; }
  fi
  if ! "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -c "$constraints" -e '.[test,gcp]'; then
    echo "== $name: install failed"; summary+=("$name: install failed"); status=1; continue
  fi
  "$venv/bin/uv" pip freeze --python "$venv/bin/python" --exclude-editable > "$venv/freeze.txt"
  "$venv/bin/python" - <<'EOF'
import importlib.metadata as m, sys
names = ["tensorflow", "keras", "numpy", "tensorflow-datasets", "apache-beam", "pillow", "protobuf", "ml-dtypes"]
print("   python", sys.version.split()[0], *(f"{n} {m.version(n)}" for n in names), sep=" | ")
EOF
  built=$(date +%s)
  echo "== $name: built in $((built - start)) s; testing (at most $timeout_s s)"
  timeout "$timeout_s" "$venv/bin/python" -m pytest -q -p no:cacheprovider --continue-on-collection-errors "${tests[@]}" 2>&1 | tee "$venv/pytest.log"
  rc=${PIPESTATUS[0]}
  done_at=$(date +%s)
  echo "== $name: tests exited $rc after $((done_at - built)) s"
  summary+=("$name: build $((built - start)) s, tests $((done_at - built)) s, exit $rc: $(grep -E '(passed|failed|error).* in [0-9.]+s' "$venv/pytest.log" | tail -n 1)")
  [ "$rc" -eq 0 ] || status=1
done
printf '%s\n' "${summary[@]}"
exit $status
