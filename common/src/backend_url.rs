//! Backend selection from URLs (`--queue`, `--store`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the queue lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueUrl {
    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`.
    Sqlite(PathBuf),
    /// `kafka://host:port[,host:port…]`.
    Kafka { brokers: String },
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

fn sqlite_path(url: &str, rest: &str) -> Result<PathBuf, BadUrl> {
    if rest.is_empty() {
        return Err(bad(
            url,
            "sqlite URL needs a file path, e.g. sqlite://data/lucent.db",
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
        if let Some(rest) = url.strip_prefix("sqlite://") {
            return Ok(QueueUrl::Sqlite(sqlite_path(url, rest)?));
        }
        if let Some(rest) = url.strip_prefix("kafka://") {
            return Ok(QueueUrl::Kafka {
                brokers: host_list(url, rest.trim_end_matches('/'), 9092)?.join(","),
            });
        }
        Err(bad(url, "queue URL must start with sqlite:// or kafka://"))
    }
}

impl FromStr for StoreUrl {
    type Err = BadUrl;

    fn from_str(url: &str) -> Result<StoreUrl, BadUrl> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            return Ok(StoreUrl::Sqlite(sqlite_path(url, rest)?));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!("kafka://".parse::<QueueUrl>().is_err());
        assert!("scylla://n/bad-keyspace".parse::<StoreUrl>().is_err());
    }
}
