#!/usr/bin/env bash
# Is `make test` flaky? Clone this repository fresh (at COMMIT, default HEAD) into a temporary folder, start
# two CPU-bound busy loops beside it (a loaded CI machine), and run `make test` RUNS times (default 10) with
# no retries, each from a pristine work tree (`git clean -xdf`, the clone's .venv kept between runs). Prints
# each run's result and duration, then "K/N passed"; exits non-zero unless every run passed. The busy loops
# and the clone go away on exit, however it ends; each run's log is kept (its folder is printed).
#
#   bench/flake.sh [RUNS] [COMMIT]        or: make flake RUNS=10 COMMIT=HEAD
set -euo pipefail

runs=${1:-10}
commit=${2:-HEAD}
case $runs in '' | *[!0-9]* | 0)
    echo "flake.sh: RUNS must be a positive whole number, not '$runs' (e.g. bench/flake.sh 10 HEAD)" >&2
    exit 2 ;;
esac
source_repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
sha=$(git -C "$source_repo" rev-parse --verify --quiet "$commit^{commit}") || {
    echo "flake.sh: '$commit' is not a commit of $source_repo (give a branch, tag or hash)" >&2
    exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/flake-clone.XXXXXX")
logs=$(mktemp -d "${TMPDIR:-/tmp}/flake-logs.XXXXXX")
busy=()
running=""
cleanup() {
    if [[ -n $running ]]; then
        kill -TERM -- "-$running" 2>/dev/null || true  # the run's own process group (make, pytest, workers)
        wait "$running" 2>/dev/null || true
    fi
    for pid in "${busy[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${busy[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

git clone --quiet --no-hardlinks "$source_repo" "$work/repo"
git -C "$work/repo" checkout --quiet --detach "$sha"
echo "flake: $runs runs of 'make test' at ${sha:0:12} in $work/repo, two busy loops beside it; logs in $logs"

for _ in 1 2; do
    bash -c 'while :; do :; done' &
    busy+=("$!")
done

passed=0
for ((i = 1; i <= runs; i++)); do
    git -C "$work/repo" clean -xdfq -e .venv
    log="$logs/run-$i.log"
    started=$SECONDS
    # In its own process group, waited for in the background, so an interrupt ends it at once.
    setsid make -C "$work/repo" test >"$log" 2>&1 &
    running=$!
    code=0
    wait "$running" || code=$?
    running=""
    if [[ $code -eq 0 ]]; then
        result=passed
        passed=$((passed + 1))
    else
        result="FAILED (exit $code)"
    fi
    echo "run $i/$runs: $result in $((SECONDS - started)) s"
    if [[ $result != passed ]]; then
        grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /' || tail -n 5 "$log" | sed 's/^/    /'
    fi
done
echo "$passed/$runs passed"
[[ $passed -eq $runs ]]
