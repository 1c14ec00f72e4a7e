//! Connect/read timeouts: servers on 127.0.0.1 that accept and stay silent, or stall mid-body,
//! make `fetch` give up within the configured read timeout (then use the cache, or fail with
//! `NotCached`), and leave no partial file; malformed timeout variables are clear errors.

mod common;

use backlens_hub::{fetch, HubConfig, HubError, HubSpec};
use common::{FakeHub, FakeRepo};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const READ_TIMEOUT: Duration = Duration::from_millis(500);

/// What the misbehaving server does with each connection.
#[derive(Clone, Copy)]
enum Mode {
    /// Accepts, reads the request, never answers.
    Silent,
    /// Answers the metadata request (`Range: bytes=0-0`) properly, then for the body sends the
    /// headers and half of the bytes, and stalls.
    StallMidBody,
}

/// A loopback server that holds every connection open until it is dropped (at most 20 s).
struct BadServer {
    endpoint: String,
    stop: Arc<AtomicBool>,
}

impl Drop for BadServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn start(mode: Mode) -> BadServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut held: Vec<TcpStream> = Vec::new();
        while !stop2.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let request = read_request(&mut s);
                    if let Mode::StallMidBody = mode {
                        answer_stalling(&mut s, &request);
                    }
                    held.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    BadServer { endpoint, stop }
}

fn read_request(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).to_ascii_lowercase()
}

fn answer_stalling(s: &mut TcpStream, request: &str) {
    let size = 1000;
    let common = format!("X-Repo-Commit: {COMMIT}\r\nETag: \"{}\"\r\n", "e".repeat(40));
    let reply = if request.contains("range: bytes=0-0") {
        format!("HTTP/1.1 206 Partial Content\r\n{common}Content-Range: bytes 0-0/{size}\r\nContent-Length: 1\r\n\r\nx")
    } else {
        let half = "y".repeat(size / 2);
        format!("HTTP/1.1 206 Partial Content\r\n{common}Content-Range: bytes 0-{}/{size}\r\nContent-Length: {size}\r\n\r\n{half}", size - 1)
    };
    let _ = s.write_all(reply.as_bytes());
    let _ = s.flush();
}

fn config(endpoint: &str, cache: &std::path::Path) -> HubConfig {
    HubConfig { read_timeout: READ_TIMEOUT, connect_timeout: READ_TIMEOUT, ..HubConfig::new(cache, endpoint) }
}

fn spec() -> HubSpec {
    "hf:acme/tiny".parse().unwrap()
}

/// Files under `dir`, recursively (symlinks not followed).
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

fn assert_times_out_to_not_cached(mode: Mode) {
    let server = start(mode);
    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let err = fetch(&spec(), &["config.json"], &[], &config(&server.endpoint, tmp.path())).unwrap_err();
    let elapsed = t.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("not in the local") && msg.contains("cannot be reached"), "{msg}");
    assert!(msg.to_ascii_lowercase().contains("timeout") || msg.contains("timed out"), "{msg}");
    // No partial download is left behind.
    let left: Vec<_> = files_under(tmp.path()).into_iter().filter(|f| f.contains("part")).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_server_that_accepts_and_never_answers_times_out() {
    assert_times_out_to_not_cached(Mode::Silent);
}

#[test]
fn a_server_that_stalls_mid_body_times_out_and_leaves_no_partial_file() {
    assert_times_out_to_not_cached(Mode::StallMidBody);
}

#[test]
fn a_silent_server_falls_back_to_the_cached_files() {
    // Fill the cache from the well-behaved fake Hub, then ask again with an optional file not
    // known to the cache (so a request is made) against a silent server.
    let repo = FakeRepo::new("acme/tiny", COMMIT).file("config.json", br#"{"hidden_size": 8}"#.to_vec());
    let hub = FakeHub::start(vec![repo]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = fetch(&spec(), &["config.json"], &[], &config(&hub.endpoint, tmp.path())).unwrap();
    hub.stop();
    let server = start(Mode::Silent);
    let t = Instant::now();
    let again = fetch(&spec(), &["config.json"], &["generation_config.json"], &config(&server.endpoint, tmp.path()));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(again.unwrap(), dir);
}

#[test]
fn timeouts_come_from_the_environment_and_malformed_values_name_the_variable() {
    let c = HubConfig::from_vars(|k| match k {
        "BACKLENS_HUB_CONNECT_TIMEOUT" => Some("2.5".into()),
        "BACKLENS_HUB_READ_TIMEOUT" => Some("7".into()),
        _ => None,
    });
    assert_eq!(c.connect_timeout, Duration::from_millis(2500));
    assert_eq!(c.read_timeout, Duration::from_secs(7));
    assert!(c.invalid_env.is_none());
    let d = HubConfig::from_vars(|_| None);
    assert_eq!(d.connect_timeout, backlens_hub::DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(d.read_timeout, backlens_hub::DEFAULT_READ_TIMEOUT);

    for bad in ["soon", "0", "-3", "inf", "NaN"] {
        let c = HubConfig::from_vars(|k| (k == "BACKLENS_HUB_CONNECT_TIMEOUT").then(|| bad.to_string()));
        // `fetch` refuses before touching the cache or the network.
        let err = fetch(&spec(), &["config.json"], &[], &c).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, HubError::InvalidEnv { .. }), "{bad}: {err:?}");
        assert!(msg.contains("BACKLENS_HUB_CONNECT_TIMEOUT") && msg.contains(bad), "{msg}");
        assert!(HubConfig::try_from_vars(|k| (k == "BACKLENS_HUB_READ_TIMEOUT").then(|| bad.to_string())).is_err());
    }
}
