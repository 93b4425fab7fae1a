use clap::Parser;
use lucent_common::open::backend_url::redact_url;
use lucent_common::process::listen::bind;
use lucent_common::process::shutdown::signal_with_deadline;
use lucent_ingest::config::{Cli, Command, KeysCommand};
use lucent_ingest::key_events::KeyChange;
use lucent_ingest::keys_cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lucent_common::process::telemetry::init_logging();
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(config)) => serve(config).await,
        Some(Command::Keys(command)) => keys(command).await,
    }
}

async fn serve(config: lucent_ingest::config::ServeConfig) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin.local_addr()?,
        queue = %redact_url(&config.queue.to_string()),
        store = %redact_url(&config.store.store.to_string()),
        redis = config.rate_limit_redis.as_deref().map(redact_url).as_deref(),
        "lucent-ingest serving"
    );
    let shutdown = signal_with_deadline(config.timeouts.drain_timeout());
    lucent_ingest::serve(&config, listener, admin, shutdown).await?;
    Ok(())
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            org,
            rate_limit_per_minute,
            store,
            rate_limit_redis,
        } => {
            let store = store.open_key_store().await?;
            let key = keys_cli::create(store.as_ref(), &org, rate_limit_per_minute).await?;
            println!("{key}");
            keys_cli::announce(rate_limit_redis.as_deref(), KeyChange::Created, key).await;
        }
        KeysCommand::Revoke {
            key,
            store,
            rate_limit_redis,
        } => {
            let store = store.open_key_store().await?;
            let key = keys_cli::revoke(store.as_ref(), &key).await?;
            eprintln!("revoked");
            keys_cli::announce(rate_limit_redis.as_deref(), KeyChange::Revoked, key).await;
        }
        KeysCommand::List { store } => {
            let store = store.open_key_store().await?;
            keys_cli::list(store.as_ref(), &mut std::io::stdout().lock()).await?;
        }
    }
    Ok(())
}
