//! Sextant's web UI: the TypeScript front end (logs, traces, metrics, alerts,
//! correlation) and this crate, which embeds its built assets in the binary so
//! that no other process serves them.
//!
//! This room holds presentation only. It calls Sextant's public HTTP APIs like
//! any other client and has no back door into storage or query.
//!
//! Architecture invariant: the front end is built by `build.rs` (Vite) on
//! every build whose sources changed; nothing built is committed.

/// One built file of the UI.
#[derive(Debug)]
pub struct Asset {
    /// Its path under the UI's root, as Vite wrote it (`index.html`,
    /// `assets/index-3f2a1c.js`).
    pub path: &'static str,
    pub body: &'static [u8],
    /// The same bytes gzip'd, for clients that accept it.
    pub gzip: &'static [u8],
}

impl Asset {
    /// The `Content-Type` its extension implies.
    pub fn content_type(&self) -> &'static str {
        match self.path.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("ico") => "image/x-icon",
            Some("json") => "application/json",
            Some("woff2") => "font/woff2",
            _ => "application/octet-stream",
        }
    }

    /// Vite names what it bundles under `assets/` by content hash: such a
    /// file never changes, so browsers may keep it for good.
    pub fn immutable(&self) -> bool {
        self.path.starts_with("assets/")
    }
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The built file at `path` (relative to the UI's root), if there is one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The page every UI route loads: it routes on the client.
pub fn index() -> &'static Asset {
    asset("index.html").expect("the UI build has an index.html (build.rs checks it)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_embeds_the_page_its_scripts_and_their_gzip() {
        let page = std::str::from_utf8(index().body).unwrap();
        let script = page
            .split("src=\"/ui/")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("index.html loads a script under /ui/");
        let js = asset(script).expect("the script index.html names is embedded");
        assert!(js.immutable());
        assert_eq!(js.content_type(), "text/javascript; charset=utf-8");
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(js.gzip), &mut raw).unwrap();
        assert_eq!(raw, js.body, "the gzip'd bytes are the script's");
        assert!(!index().immutable());
    }
}
