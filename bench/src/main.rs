use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lucent_bench::load::{self, LoadSpec, Mode};
use lucent_bench::payload::{self, Mix, RequestPool};
use lucent_bench::query::{self, seed::SeedSpec, QueryOptions};
use lucent_bench::recovery::{self, RecoverySpec};
use lucent_bench::report::{ms, rate};
use lucent_bench::scenarios::{self, Options};
use lucent_bench::{keys, servers};
use lucent_ingest::config::ServeConfig;

#[derive(Debug, Parser)]
#[command(
    name = "lucent-bench",
    about = "Benchmarks of lucent-ingest and lucent-consumer against bare baselines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every scenario, side by side; prints the Markdown report and writes it to --out.
    All(AllArgs),
    /// The bare hyper baseline: reads the body, answers 202.
    BaselineServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// lucent-ingest's request path with a queue that acknowledges at once (diagnostic).
    NullIngest {
        /// SQLite file holding the key table.
        #[arg(long, default_value = "data/lucent.db")]
        key_store: PathBuf,
        /// Everything else as `lucent-ingest serve` takes it (flags or LUCENT_* variables).
        #[command(flatten)]
        serve: Box<ServeConfig>,
    },
    /// Writes COUNT keys into a SQLite store file and LOAD_KEYS of them to --out, one a line.
    SeedKeys {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 1000)]
        load_keys: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// One load run against a server that is already up (for profiling).
    Load(LoadArgs),
    /// Recovery of the segment log after SIGKILL with a backlog (part of `all`
    /// too): time until lucent-ingest's /readyz is 200 and the consumer's first poll.
    LogRecovery(RecoveryArgs),
    /// The read API (lucent-query) on a seeded store: listing latency, events
    /// throughput and memory; prints the Markdown report and writes it to --out.
    Query(QueryArgs),
}

#[derive(Debug, Args)]
struct AllArgs {
    /// Seconds of load before each measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 4.0)]
    measure_secs: f64,
    /// Alternating rounds of the throughput comparison (best of each counts).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Seconds of the steady run watching RSS. At least 95 for a verdict: RSS
    /// legitimately rises while the limiter's 60-s window fills. The issue's
    /// number is 300.
    #[arg(long, default_value_t = 120.0)]
    soak_secs: f64,
    /// Messages in the consumer scenario (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    consumer_messages: usize,
    /// MiB of backlog in the log's recovery scenario (0 skips it).
    #[arg(long, default_value_t = 1024)]
    recovery_mib: u64,
    /// Key table sizes to compare.
    #[arg(long, value_delimiter = ',', default_value = "10,10000,1000000")]
    key_scales: Vec<usize>,
    /// Connection counts to compare.
    #[arg(long, value_delimiter = ',', default_value = "1,64,1024")]
    connections: Vec<usize>,
    /// Do not pin servers and load generator to separate cores.
    #[arg(long)]
    no_pin: bool,
    /// Skip the Kafka (tansu) scenario.
    #[arg(long)]
    no_kafka: bool,
    /// Short runs for trying the bench out (numbers are noisier).
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    dirs: Dirs,
    /// Where the report is written.
    #[arg(long, default_value = "target/bench/latest.md")]
    out: PathBuf,
}

/// Where the binaries under test are, and the scratch space.
#[derive(Debug, Args)]
struct Dirs {
    /// Where the binaries under test are (lucent-ingest, lucent-consumer,
    /// lucent-query); default: next to this binary.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Scratch space for the servers' files (removed afterwards).
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Sessions in the benchmarked organization, the large one included.
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
    /// Sessions in another organization, sharing the tables.
    #[arg(long, default_value_t = 10_000)]
    other_org_sessions: usize,
    /// MiB of event JSON in the large session.
    #[arg(long, default_value_t = 256)]
    large_session_mib: u64,
    /// Windows of the large session.
    #[arg(long, default_value_t = 2)]
    windows: usize,
    /// KiB of event JSON per batch of the large session.
    #[arg(long, default_value_t = 1024)]
    batch_kib: usize,
    /// Timed requests of each latency series.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Timed streams of each events variant (the median counts).
    #[arg(long, default_value_t = 3)]
    stream_runs: usize,
    /// How many sessions into the listing the deep page starts.
    #[arg(long, default_value_t = 50_000)]
    deep: usize,
    /// A small store and few runs, for trying the bench out.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    dirs: Dirs,
    /// Where the report is written.
    #[arg(long, default_value = "target/bench/query.md")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct RecoveryArgs {
    /// MiB of backlog to fill the log with.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    /// Rounds of SIGKILL and restart (the median counts).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[command(flatten)]
    dirs: Dirs,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Server address, e.g. 127.0.0.1:8080.
    #[arg(long)]
    addr: SocketAddr,
    /// Keys to use, one a line (see seed-keys).
    #[arg(long)]
    keys_file: PathBuf,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests per second (open loop); absent: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Include full snapshots (3%).
    #[arg(long)]
    mixed: bool,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::All(args) => all(args),
        Command::BaselineServer { listen } => server_runtime()?.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            servers::baseline(listener).await
        }),
        Command::NullIngest { key_store, serve } => {
            server_runtime()?.block_on(servers::null_queue_ingest(*serve, &key_store))
        }
        Command::SeedKeys {
            store,
            count,
            load_keys,
            out,
        } => {
            let chosen = keys::seed(&store, count, load_keys)?;
            std::fs::write(&out, chosen.join("\n") + "\n")?;
            Ok(())
        }
        Command::Load(args) => load_once(args),
        Command::LogRecovery(args) => log_recovery(args),
        Command::Query(args) => query(args),
    }
}

/// A multi-threaded runtime with tokio's defaults, as `#[tokio::main]` builds
/// for lucent-ingest: the same number of workers on the same cores.
fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// `dir`, or this binary's directory, once it holds every binary of `packages`.
fn bin_dir(dir: Option<PathBuf>, packages: &[&str]) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("the binary has a directory")?
            .to_path_buf(),
    };
    for name in packages {
        anyhow::ensure!(
            dir.join(name).is_file(),
            "{} is missing; build it first: cargo build --release -p {} -p lucent-bench",
            dir.join(name).display(),
            packages.join(" -p ")
        );
    }
    Ok(dir)
}

fn all(a: AllArgs) -> anyhow::Result<()> {
    let bin_dir = bin_dir(a.dirs.bin_dir, &["lucent-ingest", "lucent-consumer"])?;
    let mut opts = Options {
        warmup: Duration::from_secs_f64(a.warmup_secs),
        measure: Duration::from_secs_f64(a.measure_secs),
        rounds: a.rounds,
        soak: Duration::from_secs_f64(a.soak_secs),
        consumer_messages: a.consumer_messages,
        recovery_mib: a.recovery_mib,
        key_scales: a.key_scales,
        connection_scales: a.connections,
        pin: !a.no_pin,
        kafka: !a.no_kafka,
        bin_dir,
        work_dir: a.dirs.work_dir,
        out: a.out,
    };
    if a.quick {
        opts.warmup = Duration::from_millis(500);
        opts.measure = Duration::from_secs(2);
        opts.rounds = 1;
        opts.soak = opts.soak.min(Duration::from_secs(10));
        opts.consumer_messages = opts.consumer_messages.min(2_000);
        opts.recovery_mib = opts.recovery_mib.min(256);
        opts.key_scales.retain(|&n| n <= 10_000);
    }
    let text = scenarios::all(opts.clone())?;
    println!("{text}");
    eprintln!("report written to {}", opts.out.display());
    Ok(())
}

fn load_once(a: LoadArgs) -> anyhow::Result<()> {
    let keys: Vec<String> = std::fs::read_to_string(&a.keys_file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    anyhow::ensure!(!keys.is_empty(), "no keys in {}", a.keys_file.display());
    let mix = if a.mixed { Mix::MIXED } else { Mix::SMALL };
    let pool = Arc::new(RequestPool::new(
        1,
        payload::bodies(1, 512, 24),
        &keys,
        mix,
        "127.0.0.1",
        4096,
    ));
    let spec = LoadSpec {
        addr: a.addr,
        connections: a.connections,
        mode: match a.rate {
            Some(rate_per_sec) => Mode::Open { rate_per_sec },
            None => Mode::Closed,
        },
        warmup: Duration::from_secs_f64(a.warmup_secs),
        measure: Duration::from_secs_f64(a.secs),
        observe: Vec::new(),
        sample_every: None,
        pool_offset: 0,
        metrics: None,
        disk: None,
    };
    let r = load::run(&spec, pool)?;
    println!(
        "{} req/s, {:.1} MB/s wire, p50 {}, p99 {}, p99.9 {}, max {}, non-202 {:?}, io errors {}, unfinished {}, client lag p99 {}, client CPU {:.2} cores",
        rate(r.rps()),
        r.wire_mb_per_sec(),
        ms(r.latency_ms(0.5)),
        ms(r.latency_ms(0.99)),
        ms(r.latency_ms(0.999)),
        ms(r.latency.max() as f64 / 1000.0),
        r.other_statuses,
        r.io_errors,
        r.unfinished,
        ms(r.client_lag.value_at_quantile(0.99) as f64 / 1000.0),
        r.client_cpu_secs / r.seconds,
    );
    Ok(())
}

fn log_recovery(a: RecoveryArgs) -> anyhow::Result<()> {
    let bin_dir = bin_dir(a.dirs.bin_dir, &["lucent-ingest", "lucent-consumer"])?;
    std::fs::create_dir_all(&a.dirs.work_dir)?;
    let work = tempfile::Builder::new()
        .prefix("recovery-")
        .tempdir_in(&a.dirs.work_dir)?;
    let keys_db = work.path().join("keys.db");
    let keys = keys::seed(&keys_db, 100, 100)?;
    let bodies = payload::bodies(1, 512, 24);
    let pool = Arc::new(RequestPool::new(
        1,
        bodies.clone(),
        &keys,
        Mix::SMALL,
        "127.0.0.1",
        4096,
    ));
    let spec = RecoverySpec {
        dir: work.path().to_path_buf(),
        bin_dir,
        backlog_bytes: a.mib << 20,
        bodies,
        pool,
        keys_db,
        cpus: None,
        rounds: a.rounds.max(1),
    };
    let r = recovery::run(&spec)?;
    let mut text = String::new();
    recovery::table(&r).render(&mut text);
    println!("{text}{}", recovery::summary(&r));
    Ok(())
}

fn query(a: QueryArgs) -> anyhow::Result<()> {
    let mut opts = QueryOptions {
        seed: SeedSpec {
            sessions: a.sessions.max(1),
            other_org_sessions: a.other_org_sessions,
            large_bytes: a.large_session_mib << 20,
            large_windows: a.windows.max(1),
            batch_bytes: a.batch_kib.max(1) << 10,
            seed: query::seed::SEED,
        },
        requests: a.requests.max(1),
        stream_runs: a.stream_runs.max(1),
        deep: a.deep,
        bin_dir: bin_dir(a.dirs.bin_dir, &["lucent-query"])?,
        work_dir: a.dirs.work_dir,
        out: a.out,
    };
    if a.quick {
        opts.seed.sessions = opts.seed.sessions.min(10_000);
        opts.seed.other_org_sessions = opts.seed.other_org_sessions.min(1_000);
        opts.seed.large_bytes = opts.seed.large_bytes.min(32 << 20);
        opts.requests = opts.requests.min(50);
        opts.stream_runs = 1;
        opts.deep = opts.deep.min(5_000);
    }
    let text = query::run(&opts)?;
    println!("{text}");
    eprintln!("report written to {}", opts.out.display());
    Ok(())
}
