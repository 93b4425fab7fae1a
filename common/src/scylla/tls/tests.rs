//! Handshakes against a local OpenSSL node, with certificates made per test:
//! what each verification mode accepts and refuses, and how a bad file is named.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::ssl::{
    Ssl, SslAcceptor, SslConnectorBuilder, SslMethod, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::X509VerifyResult;

use super::*;

const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;
const X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const NODE_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Certificates made at test time with OpenSSL, and PEM files of them.
mod pki {
    use std::path::{Path, PathBuf};
    use std::time::{SystemTime, UNIX_EPOCH};

    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    };
    use openssl::x509::{X509Builder, X509Name, X509NameBuilder, X509};

    const DAY_SECS: i64 = 86_400;

    /// A certificate and its key.
    pub struct Identity {
        pub cert: X509,
        pub key: PKey<Private>,
    }

    /// What a leaf certificate names.
    pub enum Names<'a> {
        Ip(&'a str),
        Host(&'a str),
    }

    /// When a certificate is valid, in days from now.
    #[derive(Clone, Copy)]
    pub struct Validity {
        pub from_days: i64,
        pub until_days: i64,
    }

    pub const CURRENT: Validity = Validity {
        from_days: -1,
        until_days: 1,
    };
    pub const EXPIRED: Validity = Validity {
        from_days: -3,
        until_days: -1,
    };

    fn key() -> PKey<Private> {
        // P-256: as good as RSA here, and generated in microseconds.
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    fn builder(common_name: &str, key: &PKey<Private>, validity: Validity) -> X509Builder {
        let name = name(common_name);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();

        let mut builder = X509Builder::new().unwrap();
        builder.set_version(2).unwrap();
        builder
            .set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        builder.set_subject_name(&name).unwrap();
        builder
            .set_not_before(&Asn1Time::from_unix(now + validity.from_days * DAY_SECS).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::from_unix(now + validity.until_days * DAY_SECS).unwrap())
            .unwrap();
        builder.set_pubkey(key).unwrap();
        builder
    }

    /// A self-signed CA.
    pub fn ca(common_name: &str) -> Identity {
        let key = key();
        let mut builder = builder(common_name, &key, CURRENT);
        builder.set_issuer_name(&name(common_name)).unwrap();
        builder
            .append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        builder
            .append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        Identity {
            cert: builder.build(),
            key,
        }
    }

    fn name(common_name: &str) -> X509Name {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)
            .unwrap();
        name.build()
    }

    /// A server and client certificate signed by `issuer`.
    pub fn leaf(issuer: &Identity, names: Names<'_>, validity: Validity) -> Identity {
        let key = key();
        let common_name = match names {
            Names::Ip(ip) => ip,
            Names::Host(host) => host,
        };
        let mut builder = builder(common_name, &key, validity);
        builder.set_issuer_name(issuer.cert.subject_name()).unwrap();
        builder
            .append_extension(BasicConstraints::new().build().unwrap())
            .unwrap();
        builder
            .append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        builder
            .append_extension(
                ExtendedKeyUsage::new()
                    .server_auth()
                    .client_auth()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        let mut san = SubjectAlternativeName::new();
        match names {
            Names::Ip(ip) => san.ip(ip),
            Names::Host(host) => san.dns(host),
        };
        let san = san
            .build(&builder.x509v3_context(Some(&issuer.cert), None))
            .unwrap();
        builder.append_extension(san).unwrap();
        builder.sign(&issuer.key, MessageDigest::sha256()).unwrap();
        Identity {
            cert: builder.build(),
            key,
        }
    }

    /// Writes `pem` to `dir/name` and returns the path.
    pub fn write(dir: &Path, name: &str, pem: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    impl Identity {
        pub fn cert_pem(&self) -> Vec<u8> {
            self.cert.to_pem().unwrap()
        }

        pub fn key_pem(&self) -> Vec<u8> {
            self.key.private_key_to_pem_pkcs8().unwrap()
        }
    }
}

use pki::{Identity, Names, CURRENT, EXPIRED};

/// The test's certificates and their files.
struct Pki {
    dir: tempfile::TempDir,
    ca: Identity,
    ca_file: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::ca("Lucent test cluster CA");
        let ca_file = pki::write(dir.path(), "ca.pem", &ca.cert_pem());
        Pki { dir, ca, ca_file }
    }

    fn node_for_ip(&self) -> Identity {
        pki::leaf(&self.ca, Names::Ip("127.0.0.1"), CURRENT)
    }

    fn node_for_host(&self) -> Identity {
        pki::leaf(&self.ca, Names::Host("scylla-0.scylla"), CURRENT)
    }

    fn options(&self, verify: TlsVerify) -> TlsOptions {
        TlsOptions {
            ca_file: Some(self.ca_file.clone()),
            verify,
            ..TlsOptions::default()
        }
    }

    /// Writes `identity`'s certificate and key, returns their paths.
    fn write_identity(&self, name: &str, identity: &Identity) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{name}.crt"), &identity.cert_pem()),
            self.write(&format!("{name}.key"), &identity.key_pem()),
        )
    }

    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        pki::write(self.dir.path(), name, contents)
    }
}

/// How one handshake between the driver's side and a test node ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Data went through; `verify_result` is what OpenSSL recorded of the
    /// node's certificate (a waived mismatch stays recorded).
    Connected { verify_result: X509VerifyResult },
    /// The client refused the node's certificate.
    RefusedByClient(X509VerifyResult),
    /// The node refused the client, with OpenSSL's message.
    RefusedByServer(String),
}

/// A node serving one TLS connection on 127.0.0.1 with `identity`,
/// requiring a client certificate signed by `client_ca` when given.
struct TestNode {
    addr: SocketAddr,
    thread: JoinHandle<Result<(), String>>,
}

impl TestNode {
    fn start(identity: &Identity, client_ca: Option<&X509>) -> TestNode {
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor.set_certificate(&identity.cert).unwrap();
        acceptor.set_private_key(&identity.key).unwrap();
        if let Some(client_ca) = client_ca {
            acceptor
                .cert_store_mut()
                .add_cert(client_ca.clone())
                .unwrap();
            acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let acceptor = acceptor.build();

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            set_safety_timeouts(&tcp);
            let mut stream = acceptor.accept(tcp).map_err(|e| e.to_string())?;
            stream.write_all(b"x").map_err(|e| e.to_string())?;
            stream.flush().map_err(|e| e.to_string())?;
            // Until the client hangs up, so that it is not reset mid-read.
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte);
            Ok(())
        });
        TestNode { addr, thread }
    }
}

/// Only so that a broken test fails instead of hanging; nothing is timed.
fn set_safety_timeouts(tcp: &TcpStream) {
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
}

/// One handshake with `node`, the client side made the way the driver makes
/// it (scylla 1.9 `network::tls::openssl::new_ssl`): one `Ssl` per
/// connection from the shared context, told the node's IP address.
fn handshake(connector: SslConnectorBuilder, node: TestNode) -> Outcome {
    let context = connector.build().into_context();
    let mut ssl = Ssl::new(&context).unwrap();
    ssl.set_connect_state();
    ssl.param_mut().set_ip(NODE_IP).unwrap();

    let tcp = TcpStream::connect(node.addr).unwrap();
    set_safety_timeouts(&tcp);
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    let client = match stream.connect() {
        // With TLS 1.3 the client is done before the node has checked its
        // certificate: only reading tells whether the node accepted it.
        Ok(()) => {
            let verify_result = stream.ssl().verify_result();
            let mut byte = [0u8; 1];
            match stream.read_exact(&mut byte) {
                Ok(()) if &byte == b"x" => Ok(verify_result),
                Ok(()) => Err((verify_result, format!("read {byte:?}, not the node's x"))),
                Err(e) => Err((verify_result, e.to_string())),
            }
        }
        Err(e) => Err((stream.ssl().verify_result(), e.to_string())),
    };
    drop(stream);
    let server = node.thread.join().unwrap();

    match (client, server) {
        (Ok(verify_result), Ok(())) => Outcome::Connected { verify_result },
        (Err((verify_result, _)), _) if verify_result != X509VerifyResult::OK => {
            Outcome::RefusedByClient(verify_result)
        }
        (_, Err(server_error)) => Outcome::RefusedByServer(server_error),
        (Err((_, client_error)), Ok(())) => {
            panic!("the client failed although it accepted the node's certificate and the node accepted it: {client_error}")
        }
    }
}

fn connector(options: &TlsOptions) -> SslConnectorBuilder {
    connector_builder(options).unwrap()
}

/// `outcome` is a refusal by the client with verification error `code`.
fn refused_by_client_with(outcome: &Outcome, code: i32) -> bool {
    matches!(outcome, Outcome::RefusedByClient(result) if result.as_raw() == code)
}

#[test]
fn full_verification_accepts_a_node_certificate_for_its_ip() {
    let pki = Pki::new();
    let node = TestNode::start(&pki.node_for_ip(), None);
    assert_eq!(
        handshake(connector(&pki.options(TlsVerify::Full)), node),
        Outcome::Connected {
            verify_result: X509VerifyResult::OK
        }
    );
}

#[test]
fn full_verification_refuses_a_certificate_naming_only_a_host() {
    let pki = Pki::new();
    let node = TestNode::start(&pki.node_for_host(), None);
    let outcome = handshake(connector(&pki.options(TlsVerify::Full)), node);
    assert!(
        refused_by_client_with(&outcome, X509_V_ERR_IP_ADDRESS_MISMATCH),
        "{outcome:?}"
    );
}

/// Accepted because the IP address mismatch, which OpenSSL did detect and
/// record, was waived, not because the address went unchecked.
#[test]
fn ca_only_accepts_a_certificate_naming_only_a_host() {
    let pki = Pki::new();
    let node = TestNode::start(&pki.node_for_host(), None);
    let outcome = handshake(connector(&pki.options(TlsVerify::CaOnly)), node);
    assert!(
        matches!(&outcome, Outcome::Connected { verify_result } if verify_result.as_raw() == X509_V_ERR_IP_ADDRESS_MISMATCH),
        "{outcome:?}"
    );
}

#[test]
fn ca_only_still_refuses_a_certificate_from_another_ca() {
    let pki = Pki::new();
    let other_ca = pki::ca("Some other CA");
    let impostor = pki::leaf(&other_ca, Names::Host("scylla-0.scylla"), CURRENT);
    let node = TestNode::start(&impostor, None);
    let outcome = handshake(connector(&pki.options(TlsVerify::CaOnly)), node);
    assert!(
        refused_by_client_with(&outcome, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
        "{outcome:?}"
    );
}

/// The mismatch waived by `CaOnly` is checked before the validity dates, so
/// this also proves that the waiver does not end verification early.
#[test]
fn an_expired_certificate_is_refused_under_both_verifications() {
    let pki = Pki::new();
    for (verify, names) in [
        (TlsVerify::Full, Names::Ip("127.0.0.1")),
        (TlsVerify::CaOnly, Names::Ip("127.0.0.1")),
        (TlsVerify::CaOnly, Names::Host("scylla-0.scylla")),
    ] {
        let expired = pki::leaf(&pki.ca, names, EXPIRED);
        let node = TestNode::start(&expired, None);
        let outcome = handshake(connector(&pki.options(verify)), node);
        assert!(
            refused_by_client_with(&outcome, X509_V_ERR_CERT_HAS_EXPIRED),
            "{verify}: {outcome:?}"
        );
    }
}

/// Without a CA file only the system's roots are trusted, which did not
/// sign the cluster's certificates.
#[test]
fn without_a_ca_file_a_private_ca_is_not_trusted() {
    let pki = Pki::new();
    let node = TestNode::start(&pki.node_for_ip(), None);
    let outcome = handshake(connector(&TlsOptions::default()), node);
    assert!(
        refused_by_client_with(&outcome, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
        "{outcome:?}"
    );
}

#[test]
fn a_ca_file_replaces_the_system_roots() {
    let pki = Pki::new();
    let context = connector(&pki.options(TlsVerify::Full))
        .build()
        .into_context();
    let trusted = context.cert_store().all_certificates();
    let trusted: Vec<Vec<u8>> = trusted.iter().map(|c| c.to_der().unwrap()).collect();
    assert_eq!(trusted, vec![pki.ca.cert.to_der().unwrap()]);
}

#[test]
fn tls_below_1_2_is_not_offered() {
    let mut builder = connector(&TlsOptions::default());
    assert_eq!(builder.min_proto_version(), Some(SslVersion::TLS1_2));
}

#[test]
fn a_node_requiring_a_client_certificate_accepts_the_configured_one() {
    let pki = Pki::new();
    let client = pki::leaf(&pki.ca, Names::Host("lucent"), CURRENT);
    let (cert_file, key_file) = pki.write_identity("client", &client);
    let options = TlsOptions {
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        ..pki.options(TlsVerify::Full)
    };
    let node = TestNode::start(&pki.node_for_ip(), Some(&pki.ca.cert));
    assert_eq!(
        handshake(connector(&options), node),
        Outcome::Connected {
            verify_result: X509VerifyResult::OK
        }
    );
}

#[test]
fn a_node_requiring_a_client_certificate_refuses_a_client_without_one() {
    let pki = Pki::new();
    let node = TestNode::start(&pki.node_for_ip(), Some(&pki.ca.cert));
    let outcome = handshake(connector(&pki.options(TlsVerify::Full)), node);
    assert!(
        matches!(&outcome, Outcome::RefusedByServer(e) if e.contains("peer did not return a certificate")),
        "{outcome:?}"
    );
}

/// The message of `options`' error, asserting that it is permanent.
fn error_of(options: &TlsOptions) -> String {
    let error = tls_context(options)
        .err()
        .expect("the options were accepted");
    assert!(!error.is_retryable(), "{error}");
    error.to_string()
}

fn assert_names(message: &str, path: &Path, what: &str) {
    assert!(
        message.contains(&path.display().to_string()),
        "does not name {}: {message}",
        path.display()
    );
    assert!(message.contains(what), "does not say `{what}`: {message}");
}

#[test]
fn a_missing_ca_file_is_named() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("no-such-ca.pem");
    let message = error_of(&TlsOptions {
        ca_file: Some(missing.clone()),
        ..TlsOptions::default()
    });
    assert_names(&message, &missing, "reading CA file");
}

#[test]
fn garbage_pem_is_named() {
    let pki = Pki::new();
    let garbage = pki.write("garbage.pem", b"this is not PEM\n");
    let message = error_of(&TlsOptions {
        ca_file: Some(garbage.clone()),
        ..TlsOptions::default()
    });
    assert_names(&message, &garbage, "no PEM certificate");

    let client = pki::leaf(&pki.ca, Names::Host("lucent"), CURRENT);
    let (cert_file, _) = pki.write_identity("client", &client);
    let message = error_of(&TlsOptions {
        cert_file: Some(garbage.clone()),
        key_file: Some(garbage.clone()),
        ..TlsOptions::default()
    });
    assert_names(&message, &garbage, "client certificate");
    let message = error_of(&TlsOptions {
        cert_file: Some(cert_file),
        key_file: Some(garbage.clone()),
        ..TlsOptions::default()
    });
    assert_names(&message, &garbage, "is not a PEM private key");
}

#[test]
fn a_key_of_another_certificate_is_named_without_printing_it() {
    let pki = Pki::new();
    let client = pki::leaf(&pki.ca, Names::Host("lucent"), CURRENT);
    let other = pki::leaf(&pki.ca, Names::Host("other"), CURRENT);
    let (cert_file, _) = pki.write_identity("client", &client);
    let (_, other_key_file) = pki.write_identity("other", &other);
    let message = error_of(&TlsOptions {
        cert_file: Some(cert_file.clone()),
        key_file: Some(other_key_file.clone()),
        ..TlsOptions::default()
    });
    assert_names(
        &message,
        &other_key_file,
        "is not the key of client certificate",
    );
    assert_names(&message, &cert_file, "is not the key of client certificate");
    let key_pem = String::from_utf8(other.key_pem()).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!message.contains(key_body), "{message}");
}

#[test]
fn a_certificate_without_its_key_and_the_reverse_are_named() {
    let pki = Pki::new();
    let client = pki::leaf(&pki.ca, Names::Host("lucent"), CURRENT);
    let (cert_file, key_file) = pki.write_identity("client", &client);
    let message = error_of(&TlsOptions {
        cert_file: Some(cert_file.clone()),
        ..TlsOptions::default()
    });
    assert_names(&message, &cert_file, "without its key file");
    let message = error_of(&TlsOptions {
        key_file: Some(key_file.clone()),
        ..TlsOptions::default()
    });
    assert_names(&message, &key_file, "without its certificate file");
}

/// Refused up front rather than letting OpenSSL ask for a passphrase on
/// the terminal.
#[test]
fn an_encrypted_key_is_named() {
    let pki = Pki::new();
    let client = pki::leaf(&pki.ca, Names::Host("lucent"), CURRENT);
    let (cert_file, _) = pki.write_identity("client", &client);
    let encrypted = client
        .key
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret")
        .unwrap();
    let key_file = pki.write("encrypted.key", &encrypted);
    let message = error_of(&TlsOptions {
        cert_file: Some(cert_file),
        key_file: Some(key_file.clone()),
        ..TlsOptions::default()
    });
    assert_names(&message, &key_file, "is encrypted");
}

#[test]
fn verification_names_parse_and_others_are_refused_with_the_choices() {
    assert_eq!("full".parse(), Ok(TlsVerify::Full));
    assert_eq!("ca-only".parse(), Ok(TlsVerify::CaOnly));
    for verify in [TlsVerify::Full, TlsVerify::CaOnly] {
        assert_eq!(verify.to_string().parse(), Ok(verify));
    }
    let error = "none".parse::<TlsVerify>().unwrap_err();
    assert!(
        error.contains("`none`") && error.contains("full") && error.contains("ca-only"),
        "{error}"
    );
}
