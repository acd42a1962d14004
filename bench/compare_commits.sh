#!/usr/bin/env bash
# The fleet-day figure (pings_per_s_per_core) of two commits, back to back on this machine:
# each commit checked out in its own git worktree (the checkout itself is left alone), RUNS runs
# each, alternating old/new so a change in the machine's load hits both alike; prints every run,
# the medians and new ÷ old.
#
#   bench/compare_commits.sh [OLD [NEW [RUNS]]]       # defaults: c133fdd HEAD 3
#   BENCH_ARGS="--scale 0.05 --hours 2" bench/compare_commits.sh   # a quick check of the script
#
# BENCH_ARGS (default "--copies 1 --subsample-trucks 0": the fleet day only) go to
# `python -m bench.rules` of each commit; PYTHON (default the checkout's .venv) runs both, from
# the worktree, so each imports its own code. Issue 11's bar: new ÷ old median >= 0.90.
set -euo pipefail

root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
old=$(git -C "$root" rev-parse --verify "${1:-c133fdd}^{commit}")
new=$(git -C "$root" rev-parse --verify "${2:-HEAD}^{commit}")
runs=${3:-3}
python=${PYTHON:-$root/.venv/bin/python}
args=${BENCH_ARGS:---copies 1 --subsample-trucks 0}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hazmap-compare.XXXXXX")

cleanup() {
    for side in old new; do
        [ -d "$tmp/$side" ] && git -C "$root" worktree remove --force "$tmp/$side" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

git -C "$root" worktree add --detach --quiet "$tmp/old" "$old"
git -C "$root" worktree add --detach --quiet "$tmp/new" "$new"
echo "old ${old:0:7}  new ${new:0:7}  runs $runs  args: $args"

# a short untimed run per worktree first: numba compiles into each fresh checkout's cache once
for side in old new; do
    (cd "$tmp/$side" && "$python" -m bench.rules --scale 0.02 --hours 1 --copies 1 --subsample-trucks 0 \
        >/dev/null 2>&1) || { echo "the $side commit's bench does not run" >&2; exit 1; }
done

declare -A figures=([old]="" [new]="")
for run in $(seq 1 "$runs"); do
    for side in old new; do
        # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
        out=$(cd "$tmp/$side" && "$python" -m bench.rules $args 2>&1) || { echo "$out" >&2; exit 1; }
        value=$(printf '%s\n' "$out" | sed -n 's/^pings_per_s_per_core=//p' | tail -1)
        [ -n "$value" ] || { echo "no pings_per_s_per_core in the $side run:" >&2; echo "$out" >&2; exit 1; }
        echo "run $run $side ${!side:0:7}: pings_per_s_per_core=$value"
        figures[$side]+="$value "
    done
done

"$python" - "${figures[old]}" "${figures[new]}" <<'EOF'
import statistics
import sys

old, new = ([float(v) for v in arg.split()] for arg in sys.argv[1:3])
m_old, m_new = statistics.median(old), statistics.median(new)
print(f"median old {m_old:,.0f}  new {m_new:,.0f}  new/old {m_new / m_old:.3f}  "
      f"({'within' if m_new >= 0.9 * m_old else 'BELOW'} the 10 % bar)")
EOF
