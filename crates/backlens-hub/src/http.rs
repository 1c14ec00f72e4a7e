//! The two HTTP requests of a Hub download (metadata, then body), made with ureq 3 agents that
//! have connect and read timeouts.
//!
//! Why not hf-hub's `Api`: hf-hub 0.5 builds its ureq agents inside `ApiBuilder::build` without
//! any timeout and offers no way to pass an agent or a timeout, so a server that accepts the
//! connection and then stays silent blocks `metadata`/`download` forever. Running hf-hub on a
//! worker thread with a deadline was rejected: the blocked thread (and its socket and partial
//! file) would live on until the process ends, a global deadline cannot tell a stalled download
//! from a long healthy one, and hf-hub's partial `.sync.part` file and lock would be left behind.
//! Doing the requests here, with the URL layout and headers hf-hub and the Python client use,
//! bounds every socket operation at the socket itself:
//!
//! - DNS resolution and each TCP connection: [`HubConfig::connect_timeout`];
//! - the wait for the response headers and every read or write: [`HubConfig::read_timeout`]
//!   (ureq's `timeout_per_read`, `timeout_per_write` and `timeout_recv_response`), so a slow but
//!   steady download is never cut while a silent server is given up after `read_timeout`.
//!
//! The body is written to `blobs/<etag>.<pid>.part` and renamed into place only when complete;
//! the partial file is removed on any failure.

use crate::HubConfig;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;
use ureq::config::RedirectAuthHeaders;
use ureq::http::{Response, StatusCode, Uri};
use ureq::{Agent, Body};

/// Why a request failed.
pub(crate) enum Fail {
    /// The HTTP client's error (status codes, connection errors, timeouts).
    Http(ureq::Error),
    /// Reading the body failed (a timeout or a dropped connection): a network failure.
    Read(std::io::Error),
    /// The server's answer is unusable (missing or malformed headers, short body).
    Protocol(String),
    /// Writing to the cache failed.
    Io(PathBuf, std::io::Error),
}

impl From<ureq::Error> for Fail {
    fn from(e: ureq::Error) -> Self {
        Fail::Http(e)
    }
}

/// What the Hub says about a file before it is downloaded.
pub(crate) struct Metadata {
    pub(crate) commit: String,
    pub(crate) etag: String,
    pub(crate) size: u64,
}

/// HTTP agents with the configured timeouts and the Hub's headers.
pub(crate) struct Client {
    /// Follows redirects (for the body and for the CDN's size).
    follow: Agent,
    /// Returns redirects as they are (to read the Hub's own headers on a 302 to the CDN).
    no_follow: Agent,
    user_agent: String,
    token: Option<String>,
    progress: bool,
}

fn agent(config: &HubConfig, max_redirects: u32) -> Agent {
    Agent::config_builder()
        .timeout_resolve(Some(config.connect_timeout))
        .timeout_connect(Some(config.connect_timeout))
        .timeout_recv_response(Some(config.read_timeout))
        .timeout_per_read(Some(config.read_timeout))
        .timeout_per_write(Some(config.read_timeout))
        .max_redirects(max_redirects)
        .redirect_auth_headers(RedirectAuthHeaders::SameHost)
        .build()
        .into()
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl Client {
    pub(crate) fn new(config: &HubConfig) -> Client {
        // Same token rule as hf-hub: HF_TOKEN (in the config), else the `huggingface-cli login` file.
        let token = config.token.clone().or_else(|| hf_hub::Cache::new(config.cache_dir.clone()).token());
        Client {
            follow: agent(config, 10),
            no_follow: agent(config, 0),
            user_agent: format!("backlens-hub/{}; rust/unknown", env!("CARGO_PKG_VERSION")),
            token,
            progress: config.progress,
        }
    }

    fn get(&self, agent: &Agent, url: &str, range: &str) -> Result<Response<Body>, Fail> {
        let mut request = agent.get(url).header("User-Agent", &self.user_agent).header("Range", range);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        Ok(request.call()?)
    }

    /// hf-hub's `Api::metadata`: `Range: bytes=0-0` without following redirects, except relative
    /// ones (renamed repositories); the commit and etag come from the Hub's answer (`X-Linked-Etag`
    /// for LFS files), the size from the `Content-Range` of the final answer (the CDN's for LFS).
    pub(crate) fn metadata(&self, url: &str) -> Result<Metadata, Fail> {
        let mut current = url.to_string();
        let mut response = self.get(&self.no_follow, &current, "bytes=0-0")?;
        for _ in 0..10 {
            let Some(location) = is_redirect(response.status()).then(|| header(&response, "location")).flatten() else {
                break;
            };
            let target = Uri::from_str(&location).map_err(|_| Fail::Protocol(format!("bad Location {location:?}")))?;
            if target.host().is_some() {
                break;
            }
            let mut parts = Uri::from_str(&current).map_err(|e| Fail::Protocol(e.to_string()))?.into_parts();
            parts.path_and_query = target.into_parts().path_and_query;
            current = Uri::from_parts(parts).map_err(|e| Fail::Protocol(e.to_string()))?.to_string();
            response = self.get(&self.no_follow, &current, "bytes=0-0")?;
        }
        let etag = header(&response, "x-linked-etag")
            .or_else(|| header(&response, "etag"))
            .ok_or_else(|| Fail::Protocol("no ETag header".into()))?
            .replace('"', "");
        let commit =
            header(&response, "x-repo-commit").ok_or_else(|| Fail::Protocol("no X-Repo-Commit header".into()))?;
        let response = if is_redirect(response.status()) {
            let location =
                header(&response, "location").ok_or_else(|| Fail::Protocol("a redirect without Location".into()))?;
            self.get(&self.follow, &location, "bytes=0-0")?
        } else {
            response
        };
        let range =
            header(&response, "content-range").ok_or_else(|| Fail::Protocol("no Content-Range header".into()))?;
        let size = range
            .rsplit('/')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Fail::Protocol(format!("bad Content-Range {range:?}")))?;
        Ok(Metadata { commit: commit.trim().to_string(), etag: etag.trim().to_string(), size })
    }

    /// Downloads `url` (following redirects) into `blob`, through a partial file beside it that is
    /// removed on failure; the body must have exactly `size` bytes.
    pub(crate) fn download(&self, url: &str, size: u64, blob: &Path, file_name: &str) -> Result<(), Fail> {
        let parent = blob.parent().expect("a blob has a parent");
        std::fs::create_dir_all(parent).map_err(|e| Fail::Io(parent.to_path_buf(), e))?;
        let mut part = blob.as_os_str().to_owned();
        part.push(format!(".{}.part", std::process::id()));
        let part = PathBuf::from(part);
        let result = self
            .download_to(url, size, &part, file_name)
            .and_then(|()| std::fs::rename(&part, blob).map_err(|e| Fail::Io(blob.to_path_buf(), e)));
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result
    }

    fn download_to(&self, url: &str, size: u64, part: &Path, file_name: &str) -> Result<(), Fail> {
        let response = self.get(&self.follow, url, "bytes=0-")?;
        let mut reader = response.into_body().into_reader();
        let mut out = std::fs::File::create(part).map_err(|e| Fail::Io(part.to_path_buf(), e))?;
        let mut progress = Progress::new(self.progress, file_name, size);
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Read(e)),
            };
            out.write_all(&buf[..n]).map_err(|e| Fail::Io(part.to_path_buf(), e))?;
            total += n as u64;
            progress.update(total);
        }
        out.sync_all().map_err(|e| Fail::Io(part.to_path_buf(), e))?;
        progress.finish(total);
        if total != size {
            return Err(Fail::Protocol(format!("incomplete download: {total} bytes instead of {size}")));
        }
        Ok(())
    }
}

/// A one-line progress report on stderr, only when stderr is a terminal.
struct Progress<'a> {
    on: bool,
    file: &'a str,
    size: u64,
    last: Instant,
}

impl<'a> Progress<'a> {
    fn new(on: bool, file: &'a str, size: u64) -> Self {
        Progress { on: on && std::io::stderr().is_terminal(), file, size, last: Instant::now() }
    }

    // The progress line is the one output of this library, on stderr and only for a terminal.
    #[allow(clippy::print_stderr)]
    fn draw(&self, done: u64, end: &str) {
        let mb = |b: u64| b as f64 / 1e6;
        eprint!("\r{}: {:.1}/{:.1} MB{end}", self.file, mb(done), mb(self.size));
    }

    fn update(&mut self, done: u64) {
        if self.on && self.last.elapsed().as_millis() >= 250 {
            self.last = Instant::now();
            self.draw(done, "");
        }
    }

    fn finish(&self, done: u64) {
        if self.on {
            self.draw(done, "\n");
        }
    }
}
