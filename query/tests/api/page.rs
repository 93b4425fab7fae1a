//! The replay page: served without a key, with its own strict headers, the
//! embedded files byte for byte, revalidated by ETag; and the committed build
//! (`query/replay-ui/dist/`) is not older than its sources and lockfile.

use std::collections::BTreeMap;
use std::path::Path;

use http::Method;
use lucent_query::page::{ASSETS, PAGE_CSP};
use sha2::{Digest, Sha256};

use crate::support::*;

const UI_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/replay-ui");

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(relative: &str) -> Vec<u8> {
    let path = Path::new(UI_DIR).join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `manifest.json`'s `inputs` or `outputs`: file → SHA-256.
fn manifest(section: &str) -> BTreeMap<String, String> {
    let manifest: serde_json::Value = serde_json::from_slice(&read("dist/manifest.json")).unwrap();
    serde_json::from_value(manifest[section].clone()).unwrap()
}

const REBUILD: &str = "query/replay-ui/dist/ is stale: run `npm ci && npm run build` in \
     query/replay-ui and commit dist/ (see query/replay-ui/README.md)";

#[test]
fn the_committed_page_is_built_from_the_current_sources_and_lockfile() {
    let inputs = manifest("inputs");
    // Every source file is an input of the build, and no input is gone.
    let mut expected: Vec<String> = std::fs::read_dir(Path::new(UI_DIR).join("src"))
        .unwrap()
        .map(|entry| format!("src/{}", entry.unwrap().file_name().to_string_lossy()))
        .collect();
    expected.extend(["scripts/build.mjs", "package.json", "package-lock.json"].map(String::from));
    expected.sort();
    let listed: Vec<String> = inputs.keys().cloned().collect();
    assert_eq!(
        listed, expected,
        "{REBUILD}: the set of source files changed"
    );
    for (file, hash) in &inputs {
        assert_eq!(&sha256_hex(&read(file)), hash, "{REBUILD}: {file} changed");
    }
}

#[test]
fn the_embedded_files_are_the_committed_build() {
    let outputs = manifest("outputs");
    let mut dist: Vec<String> = std::fs::read_dir(Path::new(UI_DIR).join("dist"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "manifest.json")
        .collect();
    dist.sort();
    assert_eq!(dist, outputs.keys().cloned().collect::<Vec<_>>());
    assert_eq!(ASSETS.len(), outputs.len(), "every built file is served");
    for asset in &ASSETS {
        let file = asset.path.trim_start_matches('/');
        assert_eq!(
            sha256_hex(asset.bytes),
            outputs[file],
            "{REBUILD}: dist/{file} was changed by hand (or the binary is older)"
        );
    }
}

#[test]
fn the_page_has_no_inline_script_or_style() {
    let html = String::from_utf8(read("dist/index.html")).unwrap();
    let lower = html.to_ascii_lowercase();
    assert_eq!(lower.matches("<script").count(), 1, "{html}");
    assert!(lower.contains(r#"<script src="/app.js" defer></script>"#));
    assert!(!lower.contains("<style"), "no <style>");
    assert!(!lower.contains(" style="), "no style attribute");
    // No handler attribute: ` on` + letters + `=`.
    let handler = lower.match_indices(" on").any(|(at, _)| {
        let rest = &lower[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert!(!handler, "no on* handler attribute");
    assert!(!lower.contains("javascript:"));
}

#[tokio::test]
async fn the_page_and_its_files_are_served_without_a_key_with_strict_headers() {
    let server = TestServer::start().await;
    for (path, file, content_type) in [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/app.css", "app.css", "text/css; charset=utf-8"),
    ] {
        let reply = server.request(Method::GET, path, &[], "").await;
        assert_eq!(reply.status.as_u16(), 200, "{path}");
        assert_eq!(reply.body, read(&format!("dist/{file}")), "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("content-security-policy"), Some(PAGE_CSP));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("cache-control"), Some("no-cache"));
        let etag = reply.header("etag").expect("an ETag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        let again = server
            .request(Method::GET, path, &[("if-none-match", &etag)], "")
            .await;
        assert_eq!(again.status.as_u16(), 304, "{path} revalidated");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.header("content-security-policy"), Some(PAGE_CSP));
        let stale = server
            .request(Method::GET, path, &[("if-none-match", "\"old\"")], "")
            .await;
        assert_eq!(stale.status.as_u16(), 200, "{path} with another ETag");
    }
    // The policy the page needs, and no more (see `lucent_query::page::PAGE_CSP`).
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(PAGE_CSP.contains(directive), "{directive}");
    }
    assert!(!PAGE_CSP.contains("unsafe-eval"));
}

#[tokio::test]
async fn page_paths_take_only_get_and_a_refusal_there_is_the_apis() {
    let server = TestServer::start().await;
    for path in ["/", "/app.js"] {
        // `assert_error` also checks the API's headers (`default-src 'none'`, no-store).
        let reply = server.request(Method::POST, path, &[], "").await;
        reply.assert_error(405, "Method not allowed");
        assert_eq!(reply.header("allow"), Some("GET"), "{path}");
    }
}
