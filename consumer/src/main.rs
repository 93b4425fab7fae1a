use anyhow::Context;
use clap::Parser;
use lucent_common::backends::open_store;
use lucent_common::clock::now_ms;
use lucent_consumer::config::{Cli, Command, DlqCommand, RunConfig, SessionsCommand, StoreArgs};
use lucent_consumer::read_cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lucent_common::telemetry::init_logging();
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
    }
}

async fn run(config: RunConfig) -> anyhow::Result<()> {
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.admin_listen))?;
    tracing::info!(admin = %admin.local_addr()?, queue = %config.queue, store = %config.store.store, "lucent-consumer running");
    lucent_consumer::run(&config, admin, lucent_common::shutdown::signal()).await?;
    Ok(())
}

async fn open(
    args: &StoreArgs,
) -> anyhow::Result<std::sync::Arc<dyn lucent_common::backends::Store>> {
    open_store(&args.store, &args.scylla.options())
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
        } => {
            let retention_ms = u64::from(store.scylla.retention_days) * 86_400_000;
            let since_ms = match since {
                Some(text) => read_cli::parse_time_ms(&text)?,
                None => now_ms().saturating_sub(retention_ms),
            };
            let until_ms = match until {
                Some(text) => read_cli::parse_time_ms(&text)?,
                None => i64::MAX as u64,
            };
            let store = open(&store).await?;
            read_cli::list_sessions(
                store.as_ref(),
                &org,
                since_ms,
                until_ms,
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
