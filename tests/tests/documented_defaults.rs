//! The README's configuration tables are the real flags, environment variables
//! and defaults, in both directions.

use std::collections::BTreeMap;

use clap::CommandFactory;

/// (flag, env, default) rows between `<!-- NAME -->` and `<!-- /NAME -->`.
fn documented(section: &str) -> BTreeMap<String, (String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {section} -->"))
        .unwrap_or_else(|| panic!("README has no {section} table"));
    let end = readme.find(&format!("<!-- /{section} -->")).unwrap();
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l
                .split(" | ")
                .map(|c| c.trim_matches(|ch| ch == '|' || ch == ' ' || ch == '`'))
                .collect();
            (
                cells[0].to_string(),
                (cells[1].to_string(), cells[2].to_string()),
            )
        })
        .collect()
}

/// A service's rows and the ScyllaDB connection flags every store-opening command shares.
fn documented_with_scylla(section: &str) -> BTreeMap<String, (String, String)> {
    let mut rows = documented(section);
    rows.extend(documented("scylla-flags"));
    rows
}

/// (flag, env, default) of every argument of `command` that has an env var.
fn actual(command: &clap::Command) -> BTreeMap<String, (String, String)> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_string();
            let default = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            Some((format!("--{}", arg.get_long()?), (env, default)))
        })
        .collect()
}

#[test]
fn ingest_serve_flags_match_the_readme() {
    let command = lucent_ingest::config::Cli::command();
    let serve = command.find_subcommand("serve").unwrap();
    assert_eq!(actual(serve), documented_with_scylla("ingest-flags"));
    // The flags accepted without the subcommand are the same set.
    assert_eq!(actual(&command), documented_with_scylla("ingest-flags"));
}

#[test]
fn consumer_run_flags_match_the_readme() {
    let command = lucent_consumer::config::Cli::command();
    let run = command.find_subcommand("run").unwrap();
    assert_eq!(actual(run), documented_with_scylla("consumer-flags"));
    assert_eq!(actual(&command), documented_with_scylla("consumer-flags"));
}

#[test]
fn query_serve_flags_match_the_readme() {
    let command = lucent_query::config::Cli::command();
    let serve = command.find_subcommand("serve").unwrap();
    assert_eq!(actual(serve), documented_with_scylla("query-flags"));
    assert_eq!(actual(&command), documented_with_scylla("query-flags"));
}

#[test]
fn consumer_schema_apply_flags_match_the_readme() {
    let command = lucent_consumer::config::Cli::command();
    let apply = command
        .find_subcommand("schema")
        .and_then(|schema| schema.find_subcommand("apply"))
        .unwrap();
    let mut expected = documented_with_scylla("schema-flags");
    let run = documented("consumer-flags");
    for flag in ["--store", "--retention-days"] {
        expected.insert(flag.to_string(), run[flag].clone());
    }
    assert_eq!(actual(apply), expected);
}

#[test]
fn defaults_in_code_are_the_parsed_defaults() {
    let ingest = lucent_ingest::config::ServeConfig::defaults();
    assert_eq!(ingest.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(ingest.key_refresh_ms, 5_000);
    assert_eq!(ingest.rate_limit_per_minute, 100);
    assert_eq!(ingest.max_body_bytes, 1 << 20);
    let consumer = lucent_consumer::config::RunConfig::defaults();
    assert_eq!(consumer.max_decoded_bytes, 32 << 20);
    assert_eq!(consumer.admin_listen.to_string(), "0.0.0.0:9465");
}
