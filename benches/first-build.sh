#!/usr/bin/env bash
# Measure what a newcomer waits for: README.md's two commands on a fresh clone of HEAD, with
# an empty target directory (the crates already downloaded to ~/.cargo stay; pass
# --empty-cargo-home to include their download too), one after the other, nothing else built
# before. Prints each command's wall time and their sum against the goal of issue 19 (under
# 6 minutes together on a 2-core machine).
#
#   benches/first-build.sh                       # from the repository
#   benches/first-build.sh --empty-cargo-home
#
# Run it on a quiet machine: another build at the same time doubles the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

goal=360
work=$(mktemp -d /tmp/kpin-first-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q "$PWD" "$work/kpin"
# Nothing stands beside the clone (no ../shared): the tests that need it skip, as on a
# newcomer's machine.
if [ "${1:-}" = --empty-cargo-home ]; then
  export CARGO_HOME="$work/cargo-home"
  mkdir -p "$CARGO_HOME"
  [ -e "${HOME}/.cargo/config.toml" ] && cp "${HOME}/.cargo/config.toml" "$CARGO_HOME/"
fi
unset CARGO_TARGET_DIR
cd "$work/kpin"

# The two commands, exactly as README.md gives them.
main_job=(cargo run -- render --env prod)
tests=(cargo test)
grep -qF "${main_job[*]}" README.md || { echo "README.md no longer gives: ${main_job[*]}" >&2; exit 2; }

measure() {
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; echo "failed: $*" >&2; exit 2; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

echo "cores: $(nproc); rustc: $(rustc --version)" >&2
t1=$(measure "${main_job[@]}")
printf '%-40s %6.0f s\n' "${main_job[*]}" "$t1"
t2=$(measure "${tests[@]}")
printf '%-40s %6.0f s\n' "${tests[*]}" "$t2"
awk -v a="$t1" -v b="$t2" -v goal="$goal" 'BEGIN {
  printf "%-40s %6.0f s (goal: under %d s) %s\n", "together", a + b, goal, (a + b < goal ? "met" : "NOT met")
}'
