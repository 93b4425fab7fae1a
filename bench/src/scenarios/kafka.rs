//! (F) The Kafka queue: lucent-ingest producing to a tansu broker (memory
//! storage) on the server core; skipped with a note when tansu is missing.

use std::time::Duration;

use crate::load::Mode;
use crate::procs::{self, Proc};
use crate::report::{mib, ms, opt, rate, Table};

use super::measure::{Kind, Server};
use super::{Bench, CONNECTIONS, OPEN_LOOP_CONNECTIONS};

impl Bench {
    /// (F) the Kafka queue through tansu; a note instead when it cannot run here.
    pub(super) fn kafka(&mut self) -> anyhow::Result<()> {
        match self.kafka_server()? {
            Ok(server) => self.kafka_runs(server),
            Err(why) => {
                eprintln!("(F) Kafka scenario skipped: {why}");
                self.report
                    .notes
                    .push(format!("Kafka (tansu) scenario skipped: {why}."));
                Ok(())
            }
        }
    }

    /// Starts a tansu broker and lucent-ingest producing to it, the broker
    /// counted as the server's helper; `Ok(Err(why))` when the scenario is
    /// disabled or tansu is missing or does not work.
    fn kafka_server(&mut self) -> anyhow::Result<Result<Server, String>> {
        if !self.opts.kafka {
            return Ok(Err("disabled with --no-kafka".into()));
        }
        let Some(tansu) = procs::which("tansu") else {
            return Ok(Err(
                "`tansu` is not on PATH (install it with `cargo install tansu`)".into(),
            ));
        };
        eprintln!("(F) Kafka queue via {}", tansu.display());
        let dir = self.work.join("tansu");
        std::fs::create_dir_all(&dir)?;
        let port = procs::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut broker = Proc::start(
            "tansu",
            &dir,
            &tansu,
            &[
                "broker",
                "--storage-engine",
                "memory://",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ],
            &[],
            self.server_cpus.as_deref(),
        )?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(e) = broker.wait_for("listening", Duration::from_secs(30), || {
            procs::listening(addr)
        }) {
            return Ok(Err(format!("tansu did not start: {e}")));
        }
        let brokers = format!("127.0.0.1:{port}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let created = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                lucent_common::kafka::topics::create_topics(&brokers, 1, 1, &[]),
            )
            .await
        });
        match created {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Ok(Err(format!("creating topics on tansu failed: {e}"))),
            Err(_) => return Ok(Err("creating topics on tansu timed out".into())),
        }
        let keys_db = self.keys_db.clone();
        let mut server = match self.start(Kind::Kafka, &keys_db, Some(format!("kafka://{brokers}")))
        {
            Ok(s) => s,
            Err(e) => {
                return Ok(Err(format!(
                    "lucent-ingest did not get ready on the Kafka queue: {e}"
                )))
            }
        };
        server.helpers.push(broker);
        Ok(Ok(server))
    }

    /// The runs of (F) against `server` and their table.
    fn kafka_runs(&mut self, mut server: Server) -> anyhow::Result<()> {
        let small = self.small.clone();
        let closed = self.load(
            &mut server,
            &small,
            CONNECTIONS,
            Mode::Closed,
            self.opts.measure,
            None,
        )?;
        // librdkafka lingers up to linger.ms before sending, so 64 connections
        // bound closed-loop throughput at 64 / latency; more connections show
        // what the path can carry.
        let wide = self.load(
            &mut server,
            &small,
            1024,
            Mode::Closed,
            self.opts.measure,
            None,
        )?;
        let open = self.load(
            &mut server,
            &small,
            OPEN_LOOP_CONNECTIONS,
            Mode::Open {
                rate_per_sec: closed.rps() * 0.5,
            },
            self.opts.measure,
            None,
        )?;
        let broker_pid = server.helpers[0].pid();
        let pid = server.proc.pid();
        let mut table = Table::new(
            "F. Kafka queue: lucent-ingest → tansu (memory storage), small gzip batches",
            &[
                "run",
                "req/s",
                "p50",
                "p99",
                "p99.9",
                "ingest CPU/request",
                "broker CPU/request",
                "ingest peak RSS",
                "broker peak RSS",
                "non-2xx / errors",
            ],
        )
        .note("tansu shares the server core with ingest; acks=all on a single in-memory broker. The producer lingers up to 5 ms (`linger.ms`) to batch, so latency starts there and 64 connections cap closed-loop throughput near 64 / latency; the 1024-connection row shows the path's capacity.");
        for (name, r) in [
            ("closed loop, 64 connections", &closed),
            ("closed loop, 1024 connections", &wide),
            (
                "open loop at 50% of the 64-connection max, 256 connections",
                &open,
            ),
        ] {
            table.row(vec![
                name.into(),
                rate(r.rps()),
                ms(r.latency_ms(0.5)),
                ms(r.latency_ms(0.99)),
                ms(r.latency_ms(0.999)),
                opt(r.cpu_us_per_request(pid), |v| format!("{v:.0} µs")),
                opt(r.cpu_us_per_request(broker_pid), |v| format!("{v:.0} µs")),
                opt(r.peak_rss(pid), mib),
                opt(r.peak_rss(broker_pid), mib),
                r.errors().to_string(),
            ]);
        }
        self.report.tables.push(table);
        Ok(())
    }
}
