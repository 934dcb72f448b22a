//! The whole platform in one process, as `make run` starts it: `anb serve` on embedded defaults
//! (SQLite, a blob folder, the embedded queue, a secret made up and kept in data/), driven over
//! HTTP like a client app: sign up, log in, upload a clip, watch it get processed, download
//! the result, vote, see the rankings; then SIGTERM.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::serve::{start, QUICK_PIPELINE};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anb_serve_takes_a_clip_from_upload_to_ranking() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_file(dir.path(), "pipeline.toml", QUICK_PIPELINE);
    let input = dir.path().join("dunk.mp4");
    generate(&input, &Clip { secs: 5, ..Clip::default() });
    let serve = start(dir.path(), &pipeline);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let url = |path: &str| format!("{}{path}", serve.base);

    serve.ready().await;
    assert!(dir.path().join("data/secret_key").exists(), "serve keeps its signing key in data/");

    let player = |email: &str, first: &str| {
        let (http, signup_url, login_url) = (http.clone(), url("/api/auth/signup"), url("/api/auth/login"));
        let signup = json!({"email": email, "password1": "dunk-dunk-dunk", "password2": "dunk-dunk-dunk",
                            "first_name": first, "last_name": "Ruiz", "city": "Cali", "country": "Colombia"});
        let login = json!({"email": email, "password": "dunk-dunk-dunk"});
        async move {
            assert_eq!(http.post(signup_url).json(&signup).send().await.unwrap().status(), 201);
            let login: Value = http.post(login_url).json(&login).send().await.unwrap().json().await.unwrap();
            login["access_token"].as_str().unwrap().to_string()
        }
    };
    let token = player("ana@example.com", "Ana").await;
    let fan = player("leo@example.com", "Leo").await;

    let form = reqwest::multipart::Form::new()
        .text("title", "Game winner")
        .part("file", reqwest::multipart::Part::bytes(std::fs::read(&input).unwrap()).file_name("dunk.mp4"));
    let upload = http.post(url("/api/videos/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(upload.status(), 201);
    let video_id = upload.json::<Value>().await.unwrap()["video_id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(120);
    let detail = loop {
        let detail = json_of(http.get(url(&format!("/api/videos/{video_id}"))).bearer_auth(&token)).await;
        match detail["status"].as_str() {
            Some("completed") => break detail,
            Some("failed") => panic!("processing failed: {detail}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "not processed in time: {detail}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(detail["progress"], 1.0);
    let processed = http.get(detail["processed_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(processed.status(), 200);
    assert_eq!(processed.headers()["x-content-type-options"], "nosniff");
    let disposition = processed.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.starts_with("inline; filename=\"") && disposition.ends_with(".mp4\""), "{disposition}");
    assert_eq!(processed.headers()["content-type"], "video/mp4");
    // The poster from the same run, behind a signed link, typed so a browser shows it.
    let poster = http.get(detail["poster_url"].as_str().expect("a poster")).send().await.unwrap();
    assert_eq!((poster.status().as_u16(), poster.headers()["content-type"].to_str().unwrap()), (200, "image/jpeg"));
    assert_eq!(&poster.bytes().await.unwrap()[..3], &[0xff, 0xd8, 0xff]);
    // What serve keeps in data/ is its own: no group or other access anywhere.
    {
        use std::os::unix::fs::PermissionsExt;
        fn walk(path: &std::path::Path, found: &mut Vec<(std::path::PathBuf, u32)>) {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            found.push((path.to_path_buf(), mode));
            if path.is_dir() {
                for entry in std::fs::read_dir(path).unwrap() {
                    walk(&entry.unwrap().path(), found);
                }
            }
        }
        let mut found = Vec::new();
        walk(&dir.path().join("data"), &mut found);
        let open: Vec<_> = found.iter().filter(|(_, mode)| mode & 0o077 != 0).collect();
        assert!(found.len() > 4 && open.is_empty(), "private files and folders only: {open:?}");
    }
    let output = dir.path().join("out.mp4");
    std::fs::write(&output, processed.bytes().await.unwrap()).unwrap();
    let p = probe(&output);
    assert_eq!((p.video()["width"].as_u64(), p.video()["height"].as_u64()), (Some(320), Some(180)));
    assert!((p.format_duration() - 3.0).abs() < 0.2, "{} s", p.format_duration());

    let own = http.post(url(&format!("/api/public/videos/{video_id}/vote"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(own.status(), 400, "not for one's own video");
    let vote = http.post(url(&format!("/api/public/videos/{video_id}/vote"))).bearer_auth(&fan).send().await.unwrap();
    assert_eq!(vote.status(), 200);
    let rankings: Value = http.get(url("/api/public/rankings?city=cali")).send().await.unwrap().json().await.unwrap();
    assert_eq!(rankings["rankings"][0]["username"], "Ana Ruiz");
    assert_eq!(rankings["rankings"][0]["votes"], 1);
    let metrics = http.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"anb_jobs_total{outcome="completed",code=""} 1"#),
        "the worker's metrics join /metrics: {metrics}"
    );

    // A client written for the original API (Python `requests`), unchanged.
    let client = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/client/showcase_client.py"))
        .arg(&serve.base)
        .arg(&input)
        .output()
        .expect("the venv's Python (make test installs it with moto, which brings requests)");
    assert!(
        client.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );

    let mut serve = serve;
    Command::new("kill").args(["-TERM", &serve.child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "anb serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
