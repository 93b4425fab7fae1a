#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 10), one after
# the other, starting from the committed seeds (fuzz/seeds/TARGET) and the
# local working corpus (fuzz/corpus/TARGET, gitignored, grows between runs).
# Fails if any target crashes, after running the others; the crashing input is
# in fuzz/artifacts/TARGET/. README "Fuzzing" says how to run longer and how a
# crash becomes a regression test.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# LUCENT_FUZZ_PROFILE=dev builds without optimisation (still instrumented, with
# debug assertions): about 3.5 minutes from scratch on 2 cores instead of about
# 11 CPU-minutes, and some 1 000 executions a second instead of about 50 000.
# The test command uses it for its short run; long runs use the default, release.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
shift || true
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo-fuzz >/dev/null; then
  echo "installing cargo-fuzz from crates.io (about 2 minutes on 2 cores)"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# Stable toolchain, so no sanitizer (AddressSanitizer needs nightly); safe Rust
# needs it little. Debug assertions turn on overflow checks, so arithmetic that
# would silently wrap in a release build is found as a crash.
flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions)
case "${LUCENT_FUZZ_PROFILE:-release}" in
  release) ;;
  dev) flags+=(--dev) ;;
  *) echo "LUCENT_FUZZ_PROFILE must be release or dev" >&2; exit 2 ;;
esac

# One build of every target first: the first one on a machine compiles the whole
# dependency tree with coverage instrumentation (minutes); later ones are cached.
build_start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz build: $(( $(date +%s) - build_start ))s"

failed=()
for target in "${targets[@]}"; do
  echo "--- fuzzing $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"
  # The first corpus directory receives new inputs, so the seeds stay as committed.
  # -timeout: an input that takes 10 s is a denial of service, reported as a crash.
  if ! cargo fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1; then
    failed+=("$target")
    echo "!!! $target crashed; input(s) in fuzz/artifacts/$target/:"
    ls -t "fuzz/artifacts/$target/" 2>/dev/null | head -5 | sed "s|^|  fuzz/artifacts/$target/|"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}"
  echo "reproduce: cargo fuzz run ${flags[*]} TARGET fuzz/artifacts/TARGET/<file>"
  exit 1
fi
echo "fuzzing: no crashes in ${targets[*]} (${secs}s each)"
