//! The `--store` flag and the ScyllaDB settings that go with it, shared by
//! every binary so that each command reaches the store the same way.

use std::sync::Arc;

use clap::Args;

use crate::backend::error::StoreError;
use crate::backend::key_store::KeyStore;
use crate::open::backend_url::StoreUrl;
use crate::open::backends::{open_key_store, open_store, Store};
use crate::scylla::schema::check_recorded;
use crate::scylla::store::{
    apply_schema, schema_status, Credentials, SchemaPlan, SchemaReport, ScyllaOptions,
};
use crate::scylla::tls::{TlsOptions, TlsVerify};

/// The store every binary uses unless told otherwise.
pub const DEFAULT_STORE: &str = "sqlite://data/lucent.db";

/// The environment variable that may hold the password of `--scylla-username`.
pub const PASSWORD_ENV: &str = "LUCENT_SCYLLA_PASSWORD";

/// Where keys and sessions live, and how to reach ScyllaDB when they live there.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Store: sqlite://PATH or scylla://HOST:PORT[,HOST:PORT]/KEYSPACE.
    #[arg(long, env = "LUCENT_STORE", default_value = DEFAULT_STORE)]
    pub store: StoreUrl,
    /// Consistency of reads and writes: QUORUM, LOCAL_QUORUM, ALL, EACH_QUORUM, or ONE, LOCAL_ONE, TWO, THREE where they still read every write (ScyllaDB only).
    #[arg(
        long,
        env = "LUCENT_SCYLLA_CONSISTENCY",
        default_value = "LOCAL_QUORUM"
    )]
    pub scylla_consistency: String,
    /// Datacenter whose nodes coordinate requests; required with LOCAL_* levels on several datacenters; empty for none (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_LOCAL_DC", default_value = "")]
    pub scylla_local_dc: String,
    /// User name for clusters with authentication; empty for none (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_USERNAME", default_value = "")]
    pub scylla_username: String,
    /// File holding the password of --scylla-username (a mounted Secret), read at start (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_PASSWORD_FILE")]
    pub scylla_password_file: Option<std::path::PathBuf>,
    /// Connect over TLS (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_TLS")]
    pub scylla_tls: bool,
    /// PEM file of the CAs that sign the nodes' certificates; default: the system's (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_TLS_CA_FILE")]
    pub scylla_tls_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate, for clusters that require one (ScyllaDB only).
    #[arg(
        long,
        env = "LUCENT_SCYLLA_TLS_CERT_FILE",
        requires = "scylla_tls_key_file"
    )]
    pub scylla_tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --scylla-tls-cert-file (ScyllaDB only).
    #[arg(
        long,
        env = "LUCENT_SCYLLA_TLS_KEY_FILE",
        requires = "scylla_tls_cert_file"
    )]
    pub scylla_tls_key_file: Option<std::path::PathBuf>,
    /// What is checked of a node's certificate: full (CA and the node's IP address) or ca-only (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_TLS_VERIFY", default_value = "full")]
    pub scylla_tls_verify: TlsVerify,
    /// Allow credentials over a connection without TLS (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_ALLOW_PLAINTEXT_CREDENTIALS")]
    pub scylla_allow_plaintext_credentials: bool,
}

impl StoreArgs {
    /// The ScyllaDB settings; `ttl_secs` is the retention of session data this
    /// process writes (None: the keyspace's, for processes that only read).
    pub fn scylla_options(&self, ttl_secs: Option<u32>) -> Result<ScyllaOptions, StoreError> {
        let tls_files = self.scylla_tls_ca_file.is_some() || self.scylla_tls_cert_file.is_some();
        if tls_files && !self.scylla_tls {
            return Err(StoreError::permanent(
                "--scylla-tls-ca-file and --scylla-tls-cert-file need --scylla-tls",
            ));
        }
        Ok(ScyllaOptions {
            consistency: self.scylla_consistency.clone(),
            ttl_secs,
            local_dc: Some(self.scylla_local_dc.clone()).filter(|dc| !dc.is_empty()),
            credentials: self.credentials()?,
            tls: self.scylla_tls.then(|| TlsOptions {
                ca_file: self.scylla_tls_ca_file.clone(),
                cert_file: self.scylla_tls_cert_file.clone(),
                key_file: self.scylla_tls_key_file.clone(),
                verify: self.scylla_tls_verify,
            }),
            allow_plaintext_credentials: self.scylla_allow_plaintext_credentials,
        })
    }

    /// The user name and password, if a user name is set. The password comes
    /// from the file when one is named, else from `LUCENT_SCYLLA_PASSWORD`:
    /// never from a flag, which any user of the machine could read in the
    /// process list.
    fn credentials(&self) -> Result<Option<Credentials>, StoreError> {
        let env_password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        if self.scylla_username.is_empty() {
            if self.scylla_password_file.is_some() || env_password.is_some() {
                return Err(StoreError::permanent(
                    "a ScyllaDB password is set without --scylla-username",
                ));
            }
            return Ok(None);
        }
        let password = match (&self.scylla_password_file, env_password) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map_err(|e| {
                    StoreError::permanent_from(
                        format!("cannot read --scylla-password-file {}", path.display()),
                        e,
                    )
                })?
                // A Secret written with `echo` ends in a newline that is not part of it.
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            (None, Some(password)) => password,
            (None, None) => {
                return Err(StoreError::permanent(
                    "--scylla-username needs a password: --scylla-password-file or \
                     LUCENT_SCYLLA_PASSWORD",
                ))
            }
        };
        Ok(Some(Credentials {
            username: self.scylla_username.clone(),
            password,
        }))
    }

    /// Opens the store; `ttl_secs` is the retention of session data written
    /// through it (on ScyllaDB it must be the one the schema step recorded).
    pub async fn open(&self, ttl_secs: u32) -> Result<Arc<dyn Store>, StoreError> {
        open_store(&self.store, &self.scylla_options(Some(ttl_secs))?).await
    }

    /// Opens the store for work that writes no session data (the consumer's
    /// exports and dead-letter listings, the secret-key commands): on ScyllaDB
    /// it keeps the keyspace's retention. Work that needs only the public keys
    /// opens [`open_key_store`](StoreArgs::open_key_store) instead.
    pub async fn open_without_retention(&self) -> Result<Arc<dyn Store>, StoreError> {
        open_store(&self.store, &self.scylla_options(None)?).await
    }

    /// Opens only the key table (ingest, the `keys` commands). Keys carry no
    /// TTL, so no retention is asked for.
    pub async fn open_key_store(&self) -> Result<Arc<dyn KeyStore>, StoreError> {
        open_key_store(&self.store, &self.scylla_options(None)?).await
    }
}

/// What the schema step did to a store, for the operator.
pub enum SchemaApplied {
    /// A SQLite file creates and migrates its own tables when opened.
    Sqlite(std::path::PathBuf),
    Scylla(SchemaReport),
}

impl std::fmt::Display for SchemaApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaApplied::Sqlite(path) => write!(
                f,
                "{} is ready (a SQLite store creates and migrates its tables when opened)",
                path.display()
            ),
            SchemaApplied::Scylla(report) => report.fmt(f),
        }
    }
}

impl StoreArgs {
    /// The schema step: creates or migrates the store's schema, sized for
    /// `plan.retention_secs` (ScyllaDB; a SQLite store is only opened).
    pub async fn apply_schema(&self, plan: &SchemaPlan) -> Result<SchemaApplied, StoreError> {
        match &self.store {
            StoreUrl::Sqlite(path) => {
                open_store(&self.store, &ScyllaOptions::default()).await?;
                Ok(SchemaApplied::Sqlite(path.clone()))
            }
            StoreUrl::Scylla { nodes, keyspace } => Ok(SchemaApplied::Scylla(
                apply_schema(nodes, keyspace, &self.scylla_options(None)?, plan).await?,
            )),
        }
    }

    /// Whether this build's services can use the store as its schema stands:
    /// `Ok` with a line saying what is recorded, `Err` saying what to do.
    pub async fn schema_status(&self) -> Result<String, StoreError> {
        match &self.store {
            StoreUrl::Sqlite(path) => Ok(format!(
                "{} needs no schema step (a SQLite store creates and migrates its tables when opened)",
                path.display()
            )),
            StoreUrl::Scylla { nodes, keyspace } => {
                let recorded = schema_status(nodes, keyspace, &self.scylla_options(None)?).await?;
                let r = check_recorded(keyspace, recorded).map_err(StoreError::permanent)?;
                Ok(format!(
                    "keyspace {keyspace} is at schema version {} (this build's) for {} s ({} days) of retention",
                    r.version,
                    r.retention_secs,
                    r.retention_secs / 86_400
                ))
            }
        }
    }
}

/// Seconds in `days` days, for TTLs.
pub fn days_to_secs(days: u32) -> u32 {
    days.saturating_mul(24 * 3600)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreArgs,
    }

    fn args(flags: &[&str]) -> StoreArgs {
        let argv = std::iter::once("test").chain(flags.iter().copied());
        Cli::try_parse_from(argv).unwrap().store
    }

    #[test]
    fn the_password_comes_from_its_file_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let a = args(&[
            "--scylla-username",
            "lucent",
            "--scylla-password-file",
            file.to_str().unwrap(),
            "--scylla-tls",
        ]);
        let options = a.scylla_options(None).unwrap();
        let credentials = options.credentials.unwrap();
        assert_eq!(credentials.username, "lucent");
        assert_eq!(credentials.password, "s3cret");
        assert_eq!(options.tls, Some(TlsOptions::default()));
    }

    #[test]
    fn an_unreadable_password_file_is_named() {
        let a = args(&[
            "--scylla-username",
            "lucent",
            "--scylla-password-file",
            "/nonexistent/password",
        ]);
        let e = a.scylla_options(None).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/password"), "{e}");
    }

    #[test]
    fn tls_files_without_tls_are_refused_and_client_certificates_come_in_pairs() {
        let e = args(&["--scylla-tls-ca-file", "/ca.pem"])
            .scylla_options(None)
            .unwrap_err();
        assert!(e.to_string().contains("--scylla-tls"), "{e}");
        assert!(
            Cli::try_parse_from(["test", "--scylla-tls", "--scylla-tls-cert-file", "/c.pem"])
                .is_err()
        );
        let a = args(&[
            "--scylla-tls",
            "--scylla-tls-ca-file",
            "/ca.pem",
            "--scylla-tls-cert-file",
            "/c.pem",
            "--scylla-tls-key-file",
            "/k.pem",
            "--scylla-tls-verify",
            "ca-only",
        ]);
        let tls = a.scylla_options(Some(60)).unwrap().tls.unwrap();
        assert_eq!(tls.verify, TlsVerify::CaOnly);
        assert_eq!(
            tls.key_file.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
    }

    #[test]
    fn no_user_name_means_no_credentials() {
        let options = args(&[]).scylla_options(None).unwrap();
        assert!(options.credentials.is_none() && options.tls.is_none());
        assert_eq!(options.local_dc, None);
        let options = args(&["--scylla-local-dc", "eu"])
            .scylla_options(None)
            .unwrap();
        assert_eq!(options.local_dc.as_deref(), Some("eu"));
    }
}
