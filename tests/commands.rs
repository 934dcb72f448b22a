//! `anb web` and `anb migrate` as an operator runs them: settings from the environment,
//! embedded backends in a temporary folder, SIGTERM for a graceful stop.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn embedded_env(dir: &std::path::Path, port: u16) -> Vec<(String, String)> {
    vec![
        ("ANB_LISTEN".into(), format!("127.0.0.1:{port}")),
        ("ANB_DATABASE_URL".into(), format!("sqlite://{}/anb.db", dir.display())),
        ("ANB_STORAGE_URL".into(), format!("file://{}/blobs", dir.display())),
        ("ANB_SECRET_KEY".into(), "k".repeat(40)),
    ]
}

/// One HTTP/1.1 GET on loopback; returns the status code.
fn get_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn anb_web_serves_on_embedded_backends_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anb"))
        .arg("web")
        .envs(embedded_env(dir.path(), port))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_status(port, "/health") != Some(200) {
        assert!(Instant::now() < deadline, "anb web did not come up");
        assert!(child.try_wait().unwrap().is_none(), "anb web exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get_status(port, "/ready"), Some(200));
    assert_eq!(get_status(port, "/api/videos"), Some(401));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "anb web did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(dir.path().join("anb.db").exists());
}

#[test]
fn anb_web_without_a_secret_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<_> =
        embedded_env(dir.path(), free_port()).into_iter().filter(|(k, _)| k != "ANB_SECRET_KEY").collect();
    let out = Command::new(env!("CARGO_BIN_EXE_anb"))
        .arg("web")
        .envs(env)
        .env_remove("ANB_SECRET_KEY")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ANB_SECRET_KEY"));
}

#[test]
fn a_secret_key_shorter_than_32_bytes_is_refused_by_web_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["web", "serve"] {
        let out = Command::new(env!("CARGO_BIN_EXE_anb"))
            .arg(command)
            .envs(embedded_env(dir.path(), free_port()))
            .env("ANB_SECRET_KEY", "only-31-bytes-long-0123456789ab")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("ANB_SECRET_KEY") && stderr.contains("32 bytes"), "{command}: {stderr}");
    }
}

#[test]
fn anb_migrate_applies_and_invalid_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let env = embedded_env(dir.path(), free_port());
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_anb"))
            .arg("migrate")
            .envs(env.clone())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied (sqlite)"));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_anb"))
        .arg("migrate")
        .envs(env)
        .env("ANB_DATABASE_URL", "mysql://nope")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ANB_DATABASE_URL"));
}

/// A TCP forwarder from `listener` to `target`, one thread pair per connection.
fn forward(listener: std::net::TcpListener, target: String) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = std::net::TcpStream::connect(&target) else { continue };
            for (mut from, mut to) in [(client.try_clone().unwrap(), upstream.try_clone().unwrap()), (upstream, client)]
            {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}

#[test]
fn anb_web_waits_for_a_database_that_is_not_up_yet() {
    let (_, url) = tokio::runtime::Runtime::new().unwrap().block_on(anb_core::testing::postgres());
    // The same database behind a port where nothing listens yet.
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (real_address, database) = rest.split_once('/').unwrap();
    let db_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = embedded_env(dir.path(), port);
    env[1].1 = format!("{scheme_user}@127.0.0.1:{db_port}/{database}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_anb"))
        .arg("web")
        .envs(env)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "anb web waits instead of exiting");
    assert_eq!(get_status(port, "/health"), None, "not serving before its database answers");
    // The database comes up.
    forward(std::net::TcpListener::bind(("127.0.0.1", db_port)).unwrap(), real_address.to_string());
    let mut up = false;
    for _ in 0..300 {
        if get_status(port, "/health") == Some(200) {
            up = true;
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "anb web exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "anb web came up once the database did");
}
