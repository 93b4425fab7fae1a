//! Command-line flags for extra librdkafka settings (SASL, TLS, client tuning),
//! shared by both binaries.

use clap::Args;

use crate::backend::error::StoreError;

/// librdkafka settings applied after Lucent's own; used only with `kafka://` queues.
#[derive(Debug, Clone, Default, Args)]
pub struct KafkaFlags {
    /// A librdkafka setting, KEY=VALUE (e.g. security.protocol=SASL_SSL); repeatable.
    /// Settings Lucent's guarantees rest on (acks, idempotence, offsets) are refused.
    #[arg(
        long = "kafka-option",
        env = "LUCENT_KAFKA_OPTIONS",
        value_delimiter = ';',
        default_value = ""
    )]
    pub kafka_options: Vec<String>,
}

impl KafkaFlags {
    /// The settings as (key, value) pairs.
    pub fn overrides(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.kafka_options
            .iter()
            .filter(|o| !o.trim().is_empty())
            .map(|o| {
                o.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| {
                        StoreError::permanent(format!("--kafka-option {o:?}: expected KEY=VALUE"))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value_pairs() {
        let flags = KafkaFlags {
            kafka_options: vec![
                "security.protocol=SASL_SSL".into(),
                "".into(),
                "sasl.password=a=b".into(),
            ],
        };
        assert_eq!(
            flags.overrides().unwrap(),
            vec![
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("sasl.password".to_string(), "a=b".to_string())
            ]
        );
        assert!(KafkaFlags {
            kafka_options: vec!["novalue".into()]
        }
        .overrides()
        .is_err());
    }
}
