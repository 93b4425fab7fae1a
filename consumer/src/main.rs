use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lucent_common::domain::clock::now_ms;
use lucent_common::open::backend_url::redact_url;
use lucent_common::open::backends::Store;
use lucent_common::open::operator::{create_topics, migrate_queue, schema_cql};
use lucent_common::open::store_flags::StoreArgs;
use lucent_consumer::config::{
    Cli, Command, DlqCommand, QueueCommand, RunConfig, SchemaCommand, SessionsCommand,
    TopicsCommand,
};
use lucent_consumer::read_cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lucent_common::process::telemetry::init_logging();
    let cli = Cli::parse();
    match cli.command {
        None => run(cli.run).await,
        Some(Command::Run(config)) => run(config).await,
        Some(Command::Sessions(command)) => sessions(command).await,
        Some(Command::Dlq(DlqCommand::List { limit, store })) => {
            let store = open(&store).await?;
            read_cli::list_dead_letters(store.as_ref(), limit, &mut std::io::stdout().lock())
                .await?;
            Ok(())
        }
        Some(Command::Schema(command)) => schema(command).await,
        Some(Command::Queue(QueueCommand::Migrate {
            from,
            to,
            consumer_group,
        })) => {
            let migrated = migrate_queue(&from, &to, &consumer_group)
                .await
                .with_context(|| format!("cannot migrate {from}"))?;
            println!(
                "moved {} messages of group {consumer_group} into {to}; the old queue is now {}",
                migrated.messages,
                migrated.renamed_to.display()
            );
            Ok(())
        }
        Some(Command::Topics(TopicsCommand::Create {
            queue,
            partitions,
            replication,
            kafka,
        })) => {
            create_topics(&queue, partitions, replication, &kafka.overrides()?)
                .await
                .with_context(|| format!("cannot create topics on {queue}"))?;
            eprintln!("topics ready on {queue}");
            Ok(())
        }
    }
}

async fn run(config: RunConfig) -> anyhow::Result<()> {
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.admin_listen))?;
    tracing::info!(
        admin = %admin.local_addr()?,
        queue = %redact_url(&config.queue.to_string()),
        store = %redact_url(&config.store.store.to_string()),
        "lucent-consumer running"
    );
    let shutdown = lucent_common::process::shutdown::signal_with_deadline(Duration::from_millis(
        config.drain_timeout_ms,
    ));
    let stopped = lucent_consumer::run(&config, admin, shutdown).await?;
    if !stopped.is_clean() {
        // Everything left is redelivered; the status tells the orchestrator.
        std::process::exit(lucent_common::process::shutdown::EXIT_WORK_ABANDONED);
    }
    Ok(())
}

async fn schema(command: SchemaCommand) -> anyhow::Result<()> {
    match command {
        SchemaCommand::Apply {
            store,
            retention,
            replication,
        } => {
            let applied = store
                .apply_schema(&replication.plan(&retention))
                .await
                .with_context(|| format!("cannot apply the schema to {}", store.store))?;
            println!("{applied}");
        }
        SchemaCommand::Status { store } => {
            let status = store
                .schema_status()
                .await
                .with_context(|| format!("the schema of {} is not usable", store.store))?;
            println!("{status}");
        }
        SchemaCommand::Print {
            keyspace,
            retention,
            replication,
        } => {
            for statement in schema_cql(&keyspace, &replication.plan(&retention))? {
                println!("{statement};\n");
            }
        }
    }
    Ok(())
}

/// Opens the store for reading.
async fn open(args: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    args.open_without_retention()
        .await
        .with_context(|| format!("cannot open store {}", args.store))
}

async fn sessions(command: SessionsCommand) -> anyhow::Result<()> {
    match command {
        SessionsCommand::List {
            org,
            since,
            until,
            store,
            retention,
        } => {
            let (since_ms, until_ms) = read_cli::listing_range(
                since.as_deref(),
                until.as_deref(),
                now_ms(),
                retention.millis(),
            )?;
            let store = open(&store).await?;
            read_cli::list_sessions(
                store.as_ref(),
                &org,
                since_ms,
                until_ms,
                read_cli::LIST_PAGE_SESSIONS,
                &mut std::io::stdout().lock(),
            )
            .await?;
        }
        SessionsCommand::Export {
            org,
            session,
            store,
        } => {
            let store = open(&store).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            read_cli::export_session(store.as_ref(), &org, &session, &mut out).await?;
            std::io::Write::flush(&mut out)?;
        }
    }
    Ok(())
}
