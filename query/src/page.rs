//! The replay page (docs/design.md §7): the files of `query/replay-ui/dist/`,
//! embedded in the binary so that the page needs no network access at run
//! time and `cargo build` needs no Node. They are built from
//! `query/replay-ui/src/` with esbuild and committed; a test
//! (`tests/api/page.rs`) fails when they are older than their sources or the
//! lockfile.

use std::sync::LazyLock;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::body::{full, Body};

/// One file of the page.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// Every file of the page; `/` is `/index.html`.
pub static ASSETS: [Asset; 3] = [
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../replay-ui/dist/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../replay-ui/dist/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../replay-ui/dist/app.css"),
    },
];

/// The page's file at `path`, if it is one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The page's policy. Scripts and styles come only from this server, and the
/// page may talk only to it; nothing may frame it.
///
/// One relaxation, for the recording and not for the page: rrweb plays a
/// session in an `about:blank` iframe (sandboxed: `allow-same-origin` without
/// `allow-scripts`), which inherits this policy, and rebuilds the recorded
/// page's CSS as `<style>` elements and `style` attributes. Without
/// `'unsafe-inline'` in `style-src` every replay is unstyled. Inline style
/// cannot run code, and with `img-src`, `font-src` (none) and `connect-src`
/// limited to this server, recorded CSS cannot load anything from elsewhere.
/// Our own page has no inline style (a test checks the built index.html).
/// `frame-src`/`child-src` `'self' blob:` are rrweb's iframe and what the
/// recording nests in it, which the sandbox keeps script-free.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     frame-src 'self' blob:; child-src 'self' blob:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// Headers of the page's responses, instead of the API's.
const PAGE_HEADERS: [(header::HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
];

/// Adds [`PAGE_HEADERS`].
pub fn add_page_headers(headers: &mut HeaderMap) {
    for (name, value) in PAGE_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Each asset's ETag: a strong validator from its bytes, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            // Quoted lowercase hex is a valid header value.
            HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
        })
        .collect()
});

fn etag(asset: &Asset) -> &'static HeaderValue {
    let index = ASSETS
        .iter()
        .position(|a| a == asset)
        .expect("every asset is one of ASSETS");
    &ETAGS[index]
}

/// The response for `asset`: 304 when the request holds its ETag already.
/// `Cache-Control: no-cache`: a browser keeps the files but asks each time
/// (a 304 is cheap), because their names do not change with their content
/// and a new version of the server must be seen at once.
pub fn response(asset: &Asset, request: &HeaderMap) -> Response<Body> {
    let etag = etag(asset);
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes()
        });
    let mut response = if fresh {
        let mut r = Response::new(full(&[][..]));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(asset.bytes));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
