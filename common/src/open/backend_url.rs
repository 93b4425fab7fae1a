//! Backend selection from URLs (`--queue`, `--store`), and redacting the
//! credentials a backend URL may carry before it is logged.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the queue lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueUrl {
    /// `log://relative/dir` or `log:///absolute/dir`: the embedded segment log.
    Log(PathBuf),
    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`: the earlier
    /// embedded queue, kept for existing files (README "Embedded queue").
    Sqlite(PathBuf),
    /// `kafka://host:port[,host:port…]`.
    Kafka { brokers: String },
}

impl QueueUrl {
    /// The largest message the queue takes, headers included, when it has a
    /// limit of its own (Kafka's `message.max.bytes`, as we configure it).
    pub fn max_message_bytes(&self) -> Option<usize> {
        match self {
            QueueUrl::Kafka { .. } => Some(crate::kafka::config::MESSAGE_MAX_BYTES),
            QueueUrl::Log(_) | QueueUrl::Sqlite(_) => None,
        }
    }
}

/// Where keys and sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`.
    Sqlite(PathBuf),
    /// `scylla://host:port[,host:port…]/keyspace` (keyspace defaults to `lucent`).
    Scylla {
        nodes: Vec<String>,
        keyspace: String,
    },
}

/// A URL the configuration cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{url:?}: {why}")]
pub struct BadUrl {
    url: String,
    why: &'static str,
}

fn bad(url: &str, why: &'static str) -> BadUrl {
    BadUrl {
        url: url.to_string(),
        why,
    }
}

fn local_path(url: &str, rest: &str) -> Result<PathBuf, BadUrl> {
    if rest.is_empty() {
        return Err(bad(
            url,
            "a local URL needs a path, e.g. sqlite://data/lucent.db or log://data/queue",
        ));
    }
    Ok(PathBuf::from(rest))
}

fn host_list(url: &str, hosts: &str, default_port: u16) -> Result<Vec<String>, BadUrl> {
    let list: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.contains(':') {
                h.to_string()
            } else {
                format!("{h}:{default_port}")
            }
        })
        .collect();
    if list.is_empty() {
        return Err(bad(url, "needs at least one host"));
    }
    Ok(list)
}

impl FromStr for QueueUrl {
    type Err = BadUrl;

    fn from_str(url: &str) -> Result<QueueUrl, BadUrl> {
        if let Some(rest) = url.strip_prefix("log://") {
            return Ok(QueueUrl::Log(local_path(url, rest)?));
        }
        if let Some(rest) = url.strip_prefix("sqlite://") {
            return Ok(QueueUrl::Sqlite(local_path(url, rest)?));
        }
        if let Some(rest) = url.strip_prefix("kafka://") {
            return Ok(QueueUrl::Kafka {
                brokers: host_list(url, rest.trim_end_matches('/'), 9092)?.join(","),
            });
        }
        Err(bad(
            url,
            "queue URL must start with log://, sqlite:// or kafka://",
        ))
    }
}

impl FromStr for StoreUrl {
    type Err = BadUrl;

    fn from_str(url: &str) -> Result<StoreUrl, BadUrl> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            return Ok(StoreUrl::Sqlite(local_path(url, rest)?));
        }
        if let Some(rest) = url.strip_prefix("scylla://") {
            let (hosts, keyspace) = rest.split_once('/').unwrap_or((rest, ""));
            let keyspace = if keyspace.is_empty() {
                "lucent"
            } else {
                keyspace
            };
            if !keyspace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || keyspace.len() > 48
            {
                return Err(bad(url, "keyspace must be 1-48 characters of [A-Za-z0-9_]"));
            }
            return Ok(StoreUrl::Scylla {
                nodes: host_list(url, hosts, 9042)?,
                keyspace: keyspace.to_string(),
            });
        }
        Err(bad(url, "store URL must start with sqlite:// or scylla://"))
    }
}

impl fmt::Display for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueUrl::Log(path) => write!(f, "log://{}", path.display()),
            QueueUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            QueueUrl::Kafka { brokers } => write!(f, "kafka://{brokers}"),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Scylla { nodes, keyspace } => {
                write!(f, "scylla://{}/{keyspace}", nodes.join(","))
            }
        }
    }
}

/// Query parameters whose values are hidden by [`redact_url`]: a name that
/// contains any of these (ignoring case) is taken for a credential.
const SECRET_PARAM_HINTS: [&str; 6] = ["pass", "pwd", "secret", "token", "credential", "key"];

/// `url` with its credentials replaced by `***`, for logs and error messages:
/// the password of every `user:password@` (a bare `user@` stays), and the value
/// of every query parameter named like a password, secret, token or key.
/// Text that is not a URL comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = authority
        .split(',')
        .map(|host| match host.rsplit_once('@') {
            Some((userinfo, at)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{at}"),
                None => host.to_string(),
            },
            None => host.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    let tail = match before_fragment.split_once('?') {
        Some((path, query)) => {
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                    _ => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{path}?{query}")
        }
        None => before_fragment.to_string(),
    };
    match fragment {
        Some(fragment) => format!("{scheme}://{authority}{tail}#{fragment}"),
        None => format!("{scheme}://{authority}{tail}"),
    }
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAM_HINTS.iter().any(|hint| name.contains(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_secret_parameters() {
        assert_eq!(
            redact_url("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("redis://app:hunter2@cache:6379"),
            "redis://app:***@cache:6379"
        );
        assert_eq!(
            redact_url("kafka://u:p@a:9092,b:9092"),
            "kafka://u:***@a:9092,b:9092"
        );
        assert_eq!(
            redact_url("scylla://n1/ks?user=x&Password=y&auth_token=z#f"),
            "scylla://n1/ks?user=x&Password=***&auth_token=***#f"
        );
        assert_eq!(redact_url("redis://app@cache"), "redis://app@cache");
        assert_eq!(redact_url("sqlite://data/q.db"), "sqlite://data/q.db");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            "sqlite://data/queue.db".parse(),
            Ok(QueueUrl::Sqlite("data/queue.db".into()))
        );
        assert_eq!(
            "sqlite:///var/lib/q.db".parse(),
            Ok(QueueUrl::Sqlite("/var/lib/q.db".into()))
        );
        assert_eq!(
            "kafka://a:9093,b".parse(),
            Ok(QueueUrl::Kafka {
                brokers: "a:9093,b:9092".into()
            })
        );
        assert_eq!(
            "scylla://node:9042/lucent".parse(),
            Ok(StoreUrl::Scylla {
                nodes: vec!["node:9042".into()],
                keyspace: "lucent".into()
            })
        );
        assert_eq!(
            "scylla://n1,n2".parse(),
            Ok(StoreUrl::Scylla {
                nodes: vec!["n1:9042".into(), "n2:9042".into()],
                keyspace: "lucent".into()
            })
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!("postgres://x".parse::<StoreUrl>().is_err());
        assert!("sqlite://".parse::<QueueUrl>().is_err());
        assert!("log://".parse::<QueueUrl>().is_err());
        assert_eq!(
            "log://data/queue".parse(),
            Ok(QueueUrl::Log("data/queue".into()))
        );
        assert_eq!(
            "log://data/queue".parse::<QueueUrl>().unwrap().to_string(),
            "log://data/queue"
        );
        assert!("kafka://".parse::<QueueUrl>().is_err());
        assert!("scylla://n/bad-keyspace".parse::<StoreUrl>().is_err());
    }
}
