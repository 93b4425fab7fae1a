#!/usr/bin/env bash
# Benchmarks (issue 7): builds release binaries and runs every scenario side by
# side with its baseline (`lucent-bench all`): bare hyper vs lucent-ingest on the
# segment log (log://) and on the SQLite queue (sqlite://), the consumer on either
# vs gunzip + parse, key-table and connection scaling, the log's recovery after
# SIGKILL with a 1 GiB backlog (`--recovery-mib`; alone: `lucent-bench
# log-recovery`), a steady run watching RSS, and the Kafka queue through tansu
# when `tansu` is installed.
# Prints a Markdown report and writes it to target/bench/latest.md.
# `query` instead runs the read API's benchmark (`lucent-bench query`):
# lucent-query on a seeded store of 100 000 sessions and a 256 MiB session;
# its report goes to target/bench/query.md.
#
#   scripts/bench.sh                    # a few minutes
#   scripts/bench.sh --soak-secs 300    # the issue's 5-minute steady run
#   scripts/bench.sh --quick            # short runs, for trying it out
#   scripts/bench.sh --help             # every flag
#   scripts/bench.sh query              # the read API, about 2 minutes
#   scripts/bench.sh query --quick      # a small store, seconds
#   scripts/bench.sh query --help       # its flags
#
# Needs: Linux /proc, `taskset` (util-linux) for pinning servers and load
# generator to separate cores, and the build dependencies of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1024 client connections plus as many server sockets: raise the soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
# tansu, if installed with `cargo install`.
export PATH="$PATH:$HOME/.cargo/bin"

cargo build --release -p lucent-ingest -p lucent-consumer -p lucent-query -p lucent-bench
if [[ "${1:-}" == query ]]; then
    shift
    exec target/release/lucent-bench query "$@"
fi
exec target/release/lucent-bench all "$@"
