//! TLS for the connections to ScyllaDB: [`TlsOptions`] turned into the driver's
//! [`TlsContext`], built on the system OpenSSL (the driver's `openssl-010`
//! backend).
//!
//! What each option is for:
//! - `ca_file`: the CA certificates that sign the nodes' certificates, usually
//!   the cluster's private CA. When it is given, it is the only thing trusted:
//!   the system's public roots are left out, so that a certificate some public
//!   CA issued for the same address cannot pass for a node. Without it, the
//!   system's roots are used (a managed service with publicly signed
//!   certificates).
//! - `cert_file` and `key_file`: a client certificate (chain) and its key, for
//!   clusters that authenticate clients by certificate
//!   (`require_client_auth: true` in scylla.yaml). Both or neither.
//! - `verify`: what is checked of a node's certificate, see [`TlsVerify`].
//!
//! TLS 1.2 is the minimum: TLS 1.0 and 1.1 are deprecated (RFC 8996) and their
//! handshakes rest on SHA-1 and MD5; ScyllaDB speaks 1.2 and 1.3, so refusing
//! the older versions costs nothing and rules out a downgrade.
//!
//! The node's IP address is checked by default ([`TlsVerify::Full`]) because
//! the chain alone only proves that the CA signed the certificate for
//! *something*: with a CA that also signs other services' or clients'
//! certificates, any holder of one of those could otherwise impersonate a node.
//! The driver connects to the IP addresses that the cluster gossips, never to
//! host names, so the IP address is the name it can check; the driver itself
//! asks OpenSSL to check it on every connection.
//!
//! [`TlsVerify::CaOnly`] is for clusters whose certificates name host names
//! only, typically issued per pod by cert-manager in Kubernetes
//! (`scylla-0.scylla.ns.svc`), where pod IP addresses change at every
//! restart and cannot be in the certificate. It still refuses any
//! certificate that does not chain up to a trusted CA, or that has expired,
//! but gives up the identity check: any certificate the CA signed is taken as
//! a node's, so the CA must sign nothing but the cluster's nodes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use scylla::client::session::{OpenSsl010Config, TlsContext};

use crate::backend::error::StoreError;

/// How a ScyllaDB connection is encrypted and how the nodes are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CA certificates that sign the nodes' certificates; None: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) and its private key, for clusters that require client certificates (both or neither).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// What is checked of a node's certificate.
    pub verify: TlsVerify,
}

/// What is checked of a node's certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// The chain up to a trusted CA, and the node's IP address in the certificate (what the driver checks: it connects to the IPs the cluster gossips, not to host names).
    #[default]
    Full,
    /// The chain only: for clusters whose certificates name hosts, not IP addresses.
    CaOnly,
}

impl FromStr for TlsVerify {
    type Err = String;

    fn from_str(s: &str) -> Result<TlsVerify, String> {
        match s {
            "full" => Ok(TlsVerify::Full),
            "ca-only" => Ok(TlsVerify::CaOnly),
            _ => Err(format!(
                "unknown TLS verification `{s}`; expected `full` or `ca-only`"
            )),
        }
    }
}

impl fmt::Display for TlsVerify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVerify::Full => "full",
            TlsVerify::CaOnly => "ca-only",
        })
    }
}

/// From OpenSSL's x509_vfy.h (also openssl-sys's `X509_V_ERR_*`): the
/// verification errors that only say the certificate names another host or
/// address. `X509VerifyResult::from_raw` would name them, but it is `unsafe`.
const X509_V_ERR_HOSTNAME_MISMATCH: i32 = 62;
const X509_V_ERR_IP_ADDRESS_MISMATCH: i32 = 64;

/// The driver's TLS context for `options`. Errors (unreadable file, bad PEM, key not matching cert, cert without key) are `StoreError::permanent` naming the file and what is wrong, never printing key material.
pub fn tls_context(options: &TlsOptions) -> Result<TlsContext, StoreError> {
    let builder = connector_builder(options)?;
    Ok(TlsContext::OpenSsl010Config(OpenSsl010Config::new(builder)))
}

/// The connector that [`tls_context`] hands to the driver, before the driver
/// adds its session-ticket handling: separate so that tests can make from it
/// the same per-connection `Ssl` as the driver.
pub(crate) fn connector_builder(options: &TlsOptions) -> Result<SslConnectorBuilder, StoreError> {
    let client_identity = match (&options.cert_file, &options.key_file) {
        (Some(cert_file), Some(key_file)) => Some((cert_file, key_file)),
        (None, None) => None,
        (Some(cert_file), None) => {
            return Err(invalid(format!(
                "client certificate {} given without its key file",
                cert_file.display()
            )))
        }
        (None, Some(key_file)) => {
            return Err(invalid(format!(
                "client key {} given without its certificate file",
                key_file.display()
            )))
        }
    };

    // Verifies the peer and loads the system's roots.
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| StoreError::permanent_from("ScyllaDB TLS: creating the OpenSSL context", e))?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| StoreError::permanent_from("ScyllaDB TLS: setting TLS 1.2 as minimum", e))?;

    if let Some(ca_file) = &options.ca_file {
        builder.set_cert_store(ca_store(ca_file)?);
    }

    if let Some((cert_file, key_file)) = client_identity {
        set_client_identity(&mut builder, cert_file, key_file)?;
    }

    if options.verify == TlsVerify::CaOnly {
        // OpenSSL calls this once per failed check, so an expired or untrusted
        // certificate is still refused even after its name mismatch was waived.
        builder.set_verify_callback(SslVerifyMode::PEER, |chain_ok, context| {
            chain_ok
                || matches!(
                    context.error().as_raw(),
                    X509_V_ERR_IP_ADDRESS_MISMATCH | X509_V_ERR_HOSTNAME_MISMATCH
                )
        });
    }

    Ok(builder)
}

/// A store of the certificates in `ca_file` and nothing else.
fn ca_store(ca_file: &Path) -> Result<openssl::x509::store::X509Store, StoreError> {
    let certificates = read_certificates(ca_file, "CA file")?;
    let mut store = X509StoreBuilder::new()
        .map_err(|e| StoreError::permanent_from("ScyllaDB TLS: creating a certificate store", e))?;
    for certificate in certificates {
        store.add_cert(certificate).map_err(|e| {
            StoreError::permanent_from(
                format!("ScyllaDB TLS: adding a CA of {}", ca_file.display()),
                e,
            )
        })?;
    }
    Ok(store.build())
}

fn set_client_identity(
    builder: &mut SslConnectorBuilder,
    cert_file: &Path,
    key_file: &Path,
) -> Result<(), StoreError> {
    let mut chain = read_certificates(cert_file, "client certificate")?.into_iter();
    let leaf = chain
        .next()
        .expect("read_certificates returns at least one");
    builder.set_certificate(&leaf).map_err(|e| {
        StoreError::permanent_from(
            format!(
                "ScyllaDB TLS: using client certificate {}",
                cert_file.display()
            ),
            e,
        )
    })?;
    for intermediate in chain {
        builder.add_extra_chain_cert(intermediate).map_err(|e| {
            StoreError::permanent_from(
                format!(
                    "ScyllaDB TLS: using the chain of client certificate {}",
                    cert_file.display()
                ),
                e,
            )
        })?;
    }

    let key = read_private_key(key_file)?;
    let not_its_key = || {
        invalid(format!(
            "client key {} is not the key of client certificate {}",
            key_file.display(),
            cert_file.display()
        ))
    };
    // Compared before handing the key to OpenSSL, which would otherwise refuse
    // it with a bare "key values mismatch".
    let cert_key = leaf.public_key().map_err(|e| {
        StoreError::permanent_from(
            format!(
                "ScyllaDB TLS: reading the public key of client certificate {}",
                cert_file.display()
            ),
            e,
        )
    })?;
    if !cert_key.public_eq(&key) {
        return Err(not_its_key());
    }
    builder.set_private_key(&key).map_err(|e| {
        StoreError::permanent_from(
            format!("ScyllaDB TLS: using client key {}", key_file.display()),
            e,
        )
    })?;
    builder.check_private_key().map_err(|_| not_its_key())
}

/// The certificates of the PEM file at `path`, at least one; `what` names the
/// file's role in errors.
fn read_certificates(path: &Path, what: &str) -> Result<Vec<X509>, StoreError> {
    let pem = read(path, what)?;
    let certificates = X509::stack_from_pem(&pem).map_err(|e| {
        StoreError::permanent_from(
            format!("ScyllaDB TLS: {what} {} is not valid PEM", path.display()),
            e,
        )
    })?;
    if certificates.is_empty() {
        return Err(invalid(format!(
            "{what} {} contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certificates)
}

fn read_private_key(path: &Path) -> Result<PKey<Private>, StoreError> {
    let pem = read(path, "client key")?;
    // Without a passphrase callback OpenSSL would prompt for one on the
    // terminal, which hangs a service; there is no flag to give one anyway.
    let encrypted = String::from_utf8_lossy(&pem).lines().any(|line| {
        line.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || line.starts_with("Proc-Type: 4,ENCRYPTED")
    });
    if encrypted {
        return Err(invalid(format!(
            "client key {} is encrypted; give it unencrypted (e.g. `openssl pkey -in encrypted.pem -out key.pem`)",
            path.display()
        )));
    }
    // The source error is OpenSSL's error stack, which names the decoder that
    // failed and never the key's bytes.
    PKey::private_key_from_pem_callback(&pem, |_passphrase| Ok(0)).map_err(|e| {
        StoreError::permanent_from(
            format!(
                "ScyllaDB TLS: client key {} is not a PEM private key",
                path.display()
            ),
            e,
        )
    })
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| {
        StoreError::permanent_from(
            format!("ScyllaDB TLS: reading {what} {}", path.display()),
            e,
        )
    })
}

fn invalid(context: String) -> StoreError {
    StoreError::permanent(format!("ScyllaDB TLS: {context}"))
}

#[cfg(test)]
mod tests;
