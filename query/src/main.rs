use clap::Parser;
use lucent_common::open::backend_url::redact_url;
use lucent_common::process::listen::bind;
use lucent_common::process::shutdown::signal_with_deadline;
use lucent_query::config::{Cli, Command, SecretsCommand, ServeConfig};
use lucent_query::secrets_cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lucent_common::process::telemetry::init_logging();
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(config)) => serve(config).await,
        Some(Command::Secrets(command)) => secrets(command).await,
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin.local_addr()?,
        store = %redact_url(&config.store.store.to_string()),
        "lucent-query serving"
    );
    let shutdown = signal_with_deadline(config.timeouts.drain_timeout());
    lucent_query::serve(&config, listener, admin, shutdown).await?;
    Ok(())
}

async fn secrets(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Create {
            org,
            scope,
            name,
            store,
        } => {
            let store = store.open_without_retention().await?;
            let key = secrets_cli::create(store.as_ref(), &org, &scope, &name).await?;
            println!("{}", key.expose());
        }
        SecretsCommand::List { org, store } => {
            let store = store.open_without_retention().await?;
            secrets_cli::list(
                store.as_ref(),
                org.as_deref(),
                &mut std::io::stdout().lock(),
            )
            .await?;
        }
        SecretsCommand::Revoke { id, store } => {
            let store = store.open_without_retention().await?;
            secrets_cli::revoke(store.as_ref(), &id).await?;
            eprintln!("revoked");
        }
    }
    Ok(())
}
