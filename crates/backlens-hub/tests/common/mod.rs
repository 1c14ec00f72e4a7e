//! A real HTTP/1.1 server on 127.0.0.1 that serves fake model repositories in the Hub's URL layout,
//! with the headers hf-hub 0.5 reads (see `hf_hub::api::sync::Api::metadata`):
//!
//! - `GET /{org}/{name}/resolve/{revision}/{file}` with `Range: bytes=0-0` (metadata) or
//!   `Range: bytes=N-` (download): `206` + `Content-Range: bytes a-b/size`, `ETag`, `X-Repo-Commit`.
//! - LFS-like files (`*.safetensors`) answer `302` to an absolute `/cdn/<sha256-like>` URL, carrying
//!   `X-Linked-Etag`, `X-Linked-Size` and `X-Repo-Commit`, like the real Hub redirecting to its CDN.
//! - Missing repository, revision or file: `404` (with `X-Error-Code`, as the Hub does).
//!
//! One request per connection (`Connection: close`), loopback only, at most `MAX_REQUESTS`
//! requests, and the thread stops by itself after `LIFETIME` or when the server is dropped.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAX_REQUESTS: usize = 500;
const LIFETIME: Duration = Duration::from_secs(30);

/// A fake repository at one commit (`main` and the commit hash both resolve to it).
#[derive(Clone)]
pub struct FakeRepo {
    pub repo: String,
    pub commit: String,
    pub files: Vec<(String, Vec<u8>)>,
}

impl FakeRepo {
    pub fn new(repo: &str, commit: &str) -> Self {
        FakeRepo { repo: repo.into(), commit: commit.into(), files: Vec::new() }
    }

    pub fn file(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.into(), bytes.into()));
        self
    }

    pub fn bytes(&self, name: &str) -> &[u8] {
        &self.files.iter().find(|(n, _)| n == name).unwrap().1
    }
}

/// One logged request.
#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
}

pub struct FakeHub {
    pub endpoint: String,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Deterministic content hash as `len` hex digits (stands in for git sha1 / LFS sha256).
pub fn content_hash(bytes: &[u8], len: usize) -> String {
    let mut out = String::new();
    let mut seed: u64 = 0xcbf29ce484222325;
    while out.len() < len {
        let mut h = seed;
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        out.push_str(&format!("{h:016x}"));
        seed = seed.wrapping_add(0x9e3779b97f4a7c15);
    }
    out.truncate(len);
    out
}

fn is_lfs(name: &str) -> bool {
    name.ends_with(".safetensors")
}

/// The etag hf-hub will store the blob under.
pub fn etag_of(name: &str, bytes: &[u8]) -> String {
    content_hash(bytes, if is_lfs(name) { 64 } else { 40 })
}

impl FakeHub {
    pub fn start(repos: Vec<FakeRepo>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2, base2) = (log.clone(), stop.clone(), base.clone());
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut served = 0;
            while !stop2.load(Ordering::SeqCst) && started.elapsed() < LIFETIME && served < MAX_REQUESTS {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if handle_conn(stream, &repos, &base2, &log2) {
                            served += 1;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
                    Err(_) => break,
                }
            }
        });
        FakeHub { endpoint: base, log, stop, handle: Some(handle) }
    }

    pub fn request_count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }

    /// Stops the server and waits for its thread; the port then refuses connections.
    pub fn stop(mut self) -> usize {
        self.shutdown();
        self.request_count()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads one request and answers it; returns whether a request was read.
fn handle_conn(mut stream: TcpStream, repos: &[FakeRepo], base: &str, log: &Mutex<Vec<Logged>>) -> bool {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false, // e.g. a bare TCP reachability probe
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return false;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let headers: HashMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let range = headers.get("range").cloned();
    log.lock().unwrap().push(Logged { path: path.clone(), range: range.clone() });
    let response = route(&method, &path, range.as_deref(), repos, base);
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    true
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn not_found(code: &str, extra: &[(&str, String)]) -> Vec<u8> {
    let mut h = vec![("X-Error-Code", code.to_string())];
    h.extend(extra.iter().cloned());
    response("404 Not Found", &h, code.as_bytes())
}

/// Serves `bytes` honouring `Range: bytes=a-[b]`.
fn serve_bytes(bytes: &[u8], range: Option<&str>, mut headers: Vec<(&str, String)>) -> Vec<u8> {
    let len = bytes.len();
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else {
        return response("200 OK", &headers, bytes);
    };
    let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
    let start: usize = a.parse().unwrap_or(0);
    let end: usize =
        if b.is_empty() { len.saturating_sub(1) } else { b.parse::<usize>().unwrap_or(len - 1).min(len - 1) };
    if start >= len || start > end {
        headers.push(("Content-Range", format!("bytes */{len}")));
        return response("416 Range Not Satisfiable", &headers, b"");
    }
    headers.push(("Content-Range", format!("bytes {start}-{end}/{len}")));
    response("206 Partial Content", &headers, &bytes[start..=end])
}

fn route(method: &str, path: &str, range: Option<&str>, repos: &[FakeRepo], base: &str) -> Vec<u8> {
    if method != "GET" {
        return response("405 Method Not Allowed", &[], b"");
    }
    if let Some(etag) = path.strip_prefix("/cdn/") {
        for repo in repos {
            for (name, bytes) in &repo.files {
                if etag_of(name, bytes) == etag {
                    return serve_bytes(bytes, range, vec![("Content-Type", "application/octet-stream".into())]);
                }
            }
        }
        return not_found("EntryNotFound", &[]);
    }
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if segs.len() != 5 || segs[2] != "resolve" {
        return not_found("NotFound", &[]);
    }
    let repo_id = format!("{}/{}", segs[0], segs[1]);
    let revision = segs[3].replace("%2F", "/");
    let file = segs[4];
    let Some(repo) = repos.iter().find(|r| r.repo == repo_id) else {
        return not_found("RepoNotFound", &[]);
    };
    if revision != "main" && revision != repo.commit {
        return not_found("RevisionNotFound", &[]);
    }
    let commit = ("X-Repo-Commit", repo.commit.clone());
    let Some((name, bytes)) = repo.files.iter().find(|(n, _)| n == file) else {
        return not_found("EntryNotFound", &[commit]);
    };
    let etag = etag_of(name, bytes);
    if is_lfs(name) {
        let headers = [
            commit,
            ("X-Linked-Etag", format!("\"{etag}\"")),
            ("X-Linked-Size", bytes.len().to_string()),
            ("ETag", format!("\"{}\"", content_hash(etag.as_bytes(), 40))),
            ("Location", format!("{base}/cdn/{etag}")),
        ];
        return response("302 Found", &headers, b"");
    }
    serve_bytes(bytes, range, vec![commit, ("ETag", format!("\"{etag}\""))])
}
