//! The edge against hostile clients, over HTTP on loopback: password work bounded, rate limits,
//! every input bounded, slow clients cut off, load shed, and no voting for oneself. Each test
//! runs its own server with the limits it exercises turned low.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anb_core::db::Db;
use anb_core::model::StartOutcome;
use anb_web::{MicroCache, Passwords};
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

anb_core::on_both_databases!(
    password_work_is_bounded_and_the_excess_gets_503_while_health_answers,
    logins_and_signups_are_limited_per_client_address,
    failed_logins_grow_a_delay_per_account,
    passwords_are_normalised_alike_and_bounded,
    json_bodies_and_profile_fields_are_bounded_and_control_characters_refused,
    upload_text_fields_are_read_with_a_cap,
    query_parameters_are_validated,
    players_cannot_vote_for_themselves_and_double_votes_count_once,
    a_stalled_upload_body_ends_with_408_and_stores_nothing,
    excess_requests_are_shed_with_503_and_health_still_answers,
    an_upload_link_takes_one_complete_put_and_a_cut_off_one_leaves_nothing,
    readiness_tells_the_public_only_what_is_down_and_metrics_can_need_a_token,
    the_public_cache_holds_a_bounded_number_of_bytes_whatever_the_queries,
);

fn signup(email: &str) -> Value {
    json!({"email": email, "password1": "long-enough", "password2": "long-enough",
           "first_name": "Ana", "last_name": "Ruiz", "city": "Cali", "country": "Colombia"})
}

/// Status, `Retry-After` and body of a JSON POST.
async fn post(app: &App, path: &str, body: &Value, forwarded_for: Option<&str>) -> (u16, Option<u64>, Value) {
    let mut request = app.http.post(app.url(path)).json(body);
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

async fn password_work_is_bounded_and_the_excess_gets_503_while_health_answers(db: Db) {
    // One hash at a time, and a request waits at most 20 ms for it.
    let app = App::start_with(
        db,
        Storage::Folder,
        |o| o.throttle.login_attempts_per_minute = 10_000,
        |s| s.passwords = Arc::new(Passwords::new(1).with_queue_wait(Duration::from_millis(20))),
    )
    .await;
    let bodies: Vec<Value> =
        (0..40).map(|i| json!({"email": format!("nobody{i}@example.com"), "password": "wrong-password"})).collect();
    let logins = bodies.iter().map(|body| post(&app, "/api/auth/login", body, None));
    let health = async {
        let mut answered = 0;
        for _ in 0..20 {
            assert_eq!(app.get("/health", None).await.0, 200);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        answered
    };
    let (answers, answered) = tokio::join!(futures_util::future::join_all(logins), health);
    assert_eq!(answered, 20, "/health answers through the flood");
    let count = |status: u16| answers.iter().filter(|(s, _, _)| *s == status).count();
    assert_eq!(
        count(401) + count(503),
        answers.len(),
        "only 401 and 503: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(count(401) >= 1 && count(503) >= 1, "401: {}, 503: {}", count(401), count(503));
    for (_, retry_after, body) in answers.iter().filter(|(s, _, _)| *s == 503) {
        assert_eq!(*retry_after, Some(1));
        assert!(body["detail"].is_string(), "{body}");
    }
}

async fn logins_and_signups_are_limited_per_client_address(db: Db) {
    let app = App::start_with(
        db,
        Storage::Folder,
        |o| {
            o.throttle.login_attempts_per_minute = 3;
            o.throttle.signups_per_hour = 2;
            o.throttle.trusted_proxy_hops = 1;
        },
        |_| {},
    )
    .await;
    // Behind one trusted proxy the client is the last X-Forwarded-For entry; what the client
    // wrote before it is not trusted.
    for (i, xff) in ["198.51.100.7", "6.6.6.6, 198.51.100.7"].iter().enumerate() {
        assert_eq!(post(&app, "/api/auth/signup", &signup(&format!("p{i}@example.com")), Some(xff)).await.0, 201);
    }
    let (status, retry_after, body) =
        post(&app, "/api/auth/signup", &signup("p3@example.com"), Some("7.7.7.7, 198.51.100.7")).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry_after.is_some_and(|s| (1..=1800).contains(&s)), "{retry_after:?}");
    assert!(body["detail"].as_str().unwrap().contains("sign-ups"), "{body}");
    assert_eq!(
        post(&app, "/api/auth/signup", &signup("p4@example.com"), Some("198.51.100.8")).await.0,
        201,
        "another client"
    );

    let login = json!({"email": "p0@example.com", "password": "wrong-password"});
    for _ in 0..3 {
        assert_eq!(post(&app, "/api/auth/login", &login, None).await.0, 401);
    }
    let (status, retry_after, body) = post(&app, "/api/auth/login", &login, None).await;
    assert_eq!((status, body["detail"].is_string()), (429, true), "{body}");
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "{retry_after:?}");
}

async fn failed_logins_grow_a_delay_per_account(db: Db) {
    let app = App::start(db, Storage::Folder, 1 << 20).await;
    app.player("Ana", "Cali").await;
    let wrong = json!({"email": "ana@example.com", "password": "not-the-password"});
    let right = json!({"email": "ANA@example.com", "password": "s3cret-pass"});
    for _ in 0..5 {
        assert_eq!(post(&app, "/api/auth/login", &wrong, None).await.0, 401);
    }
    // Even the right password waits now (the account, not the address, is throttled).
    let (status, retry_after, _) = post(&app, "/api/auth/login", &right, Some("192.0.2.99")).await;
    assert_eq!((status, retry_after), (429, Some(1)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&app, "/api/auth/login", &right, None).await.0, 200);
    assert_eq!(post(&app, "/api/auth/login", &wrong, None).await.0, 401, "a success starts the count again");
    assert_eq!(post(&app, "/api/auth/login", &right, None).await.0, 200);
}

async fn passwords_are_normalised_alike_and_bounded(db: Db) {
    let app = App::start(db, Storage::Folder, 1 << 20).await;
    // Typed on a Mac (NFD, with a stray space), then on a phone (NFC).
    let nfd = " Pa\u{308}ssword-9 ";
    let mut body = signup("ana@example.com");
    body["password1"] = nfd.into();
    body["password2"] = nfd.into();
    assert_eq!(post(&app, "/api/auth/signup", &body, None).await.0, 201);
    assert_eq!(
        post(&app, "/api/auth/login", &json!({"email": "ana@example.com", "password": "P\u{e4}ssword-9"}), None)
            .await
            .0,
        200
    );

    let long = "x".repeat(129);
    let mut body = signup("leo@example.com");
    body["password1"] = long.clone().into();
    body["password2"] = long.into();
    let (status, _, answer) = post(&app, "/api/auth/signup", &body, None).await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "password1"]), "{answer}");
    assert!(answer["detail"][0]["msg"].as_str().unwrap().contains("128"), "{answer}");
    let (status, _, _) =
        post(&app, "/api/auth/login", &json!({"email": "ana@example.com", "password": "y".repeat(10_000)}), None).await;
    assert_eq!(status, 401, "refused without hashing 10 KB");
}

async fn json_bodies_and_profile_fields_are_bounded_and_control_characters_refused(db: Db) {
    let app = App::start(db, Storage::Folder, 1 << 20).await;
    let mut huge = signup("ana@example.com");
    huge["first_name"] = "A".repeat(1 << 20).into();
    let (status, _, body) = post(&app, "/api/auth/signup", &huge, None).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("64 KiB"), "{body}");

    for (field, value) in [
        ("first_name", "A".repeat(101)),
        ("city", "Ca\u{0}li".to_string()),
        ("last_name", "Ruiz\u{1b}[31m".to_string()),
    ] {
        let mut body = signup(&format!("{field}@example.com"));
        body[field] = value.into();
        let (status, _, answer) = post(&app, "/api/auth/signup", &body, None).await;
        assert_eq!(status, 422, "{field}: {answer}");
        assert_eq!(answer["detail"][0]["loc"], json!(["body", field]), "{answer}");
        // Nothing was stored: the account does not exist.
        let login = json!({"email": format!("{field}@example.com"), "password": "long-enough"});
        assert_eq!(post(&app, "/api/auth/login", &login, None).await.0, 401);
    }
    let mut email = signup(&format!("{}@example.com", "a".repeat(250)));
    email["city"] = "Cali".into();
    assert_eq!(post(&app, "/api/auth/signup", &email, None).await.0, 422, "an address over 254 characters");
    // The schema says so too.
    let (_, spec) = app.get("/openapi.json", None).await;
    let props = &spec["components"]["schemas"]["SignupRequest"]["properties"];
    assert_eq!(
        (props["city"]["maxLength"].as_u64(), props["password1"]["maxLength"].as_u64()),
        (Some(100), Some(128)),
        "{props}"
    );
}

async fn upload_text_fields_are_read_with_a_cap(db: Db) {
    let app = App::start(db, Storage::Folder, 1 << 20).await;
    let (_, token) = app.player("Ana", "Cali").await;
    // A 1 MiB title, sent as a stream: refused at the cap, never buffered whole.
    let title = futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b't'; 16 << 10])));
    let form = reqwest::multipart::Form::new()
        .part("title", reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(title)))
        .part("file", reqwest::multipart::Part::bytes(mp4_bytes(1000)).file_name("clip.mp4"));
    let response =
        app.http.post(app.url("/api/videos/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("`title`"), "{body}");

    let form = reqwest::multipart::Form::new()
        .text("title", "fine")
        .text("description", "line one\nline two\u{0}")
        .part("file", reqwest::multipart::Part::bytes(mp4_bytes(1000)).file_name("clip.mp4"));
    let response =
        app.http.post(app.url("/api/videos/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "description"]), "{body}");
    assert_eq!(app.get("/api/videos", Some(&token)).await.1, json!([]), "nothing recorded");
    assert_eq!(app.files_in_blob_dir(), 0, "nothing stored");
}

async fn query_parameters_are_validated(db: Db) {
    let app = App::start(db, Storage::Folder, 1 << 20).await;
    let (status, body) = app.get(&format!("/api/public/rankings?city={}", "c".repeat(101)), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"][1], "city");
    assert_eq!(app.get("/api/public/rankings?city=Ca%00li", None).await.0, 422);
    assert_eq!(app.get("/api/public/rankings?city=%20CALI%20", None).await.0, 200);
    assert_eq!(app.get("/api/public/videos?page_size=101", None).await.0, 422);
    assert_eq!(app.get("/api/public/videos?page=0", None).await.0, 422);
}

async fn players_cannot_vote_for_themselves_and_double_votes_count_once(db: Db) {
    let app = App::start(db, Storage::Folder, 1 << 20).await;
    let (_, owner) = app.player("Ana", "Cali").await;
    let (_, fan) = app.player("Leo", "Cali").await;
    let (_, video) = app.upload(&owner, mp4_bytes(1000), Some("dunk")).await;
    let id = Uuid::parse_str(video["video_id"].as_str().unwrap()).unwrap();
    let store = &app.state.backends.store;
    let StartOutcome::Started { attempt, .. } = store.start_processing(id, Duration::from_secs(60)).await.unwrap()
    else {
        panic!()
    };
    assert!(store.complete(id, attempt, &format!("processed/{id}.mp4"), None).await.unwrap());

    let vote = |token: String| {
        let (http, url) = (app.http.clone(), app.url(&format!("/api/public/videos/{id}/vote")));
        async move {
            let r = http.post(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = vote(owner.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"], "You cannot vote for your own video");
    let answers = futures_util::future::join_all((0..10).map(|_| vote(fan.clone()))).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 1, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 400), "{answers:?}");
    assert_eq!(store.video(id).await.unwrap().unwrap().votes, 1);
}

/// Read from `stream` until it closes; the bytes read, or `None` if it stayed open `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let db = anb_core::testing::sqlite(dir.path()).await;
    let app =
        App::start_with(db, Storage::Folder, |o| o.server.header_read_timeout = Duration::from_secs(1), |_| {}).await;
    let addr = app.base.trim_start_matches("http://").to_string();

    // Slowloris: headers that never end.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    assert!(
        read_until_closed(&mut slow, Duration::from_secs(10)).await.is_some(),
        "a connection that never finishes its headers is closed"
    );
    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    assert!(read_until_closed(&mut silent, Duration::from_secs(10)).await.is_some(), "a silent connection is closed");
    // A kept-alive connection that goes quiet after a request.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let seen = read_until_closed(&mut idle, Duration::from_secs(10)).await.expect("closed after going idle");
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"), "it was answered first");
    // Honest clients are unaffected.
    assert_eq!(app.get("/health", None).await.0, 200);
}

async fn a_stalled_upload_body_ends_with_408_and_stores_nothing(db: Db) {
    let app =
        App::start_with(db, Storage::Folder, |o| o.server.body_idle_timeout = Duration::from_secs(1), |_| {}).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let boundary = "anbboundary";
    let mut first = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nslow\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    first.extend_from_slice(&mp4_bytes(64 << 10));
    let head = format!(
        "POST /api/videos/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        first.len() + (1 << 20)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&first).await.unwrap();
    // ... and then nothing more.
    // Meanwhile the account has one more upload place (two at once), then no more.
    let mut second = TcpStream::connect(&addr).await.unwrap();
    second.write_all(head.as_bytes()).await.unwrap();
    second.write_all(&first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = app.upload(&token, mp4_bytes(1000), Some("a third at once")).await;
    assert_eq!(status, 429, "a third upload of one account while two are running");
    let seen = read_until_closed(&mut stream, Duration::from_secs(15)).await.expect("the request ends");
    let answer = String::from_utf8_lossy(&seen);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(second);
    let (app, token) = (&app, &token);
    assert!(
        settles(|| async move { app.upload(token, mp4_bytes(1000), Some("after")).await.0 == 201 }).await,
        "the upload places were given back"
    );
    let mine = app.get("/api/videos", Some(token)).await.1;
    assert_eq!(mine.as_array().unwrap().len(), 1, "only the upload that finished is recorded: {mine}");
    assert!(settles(|| async move { app.files_in_blob_dir() == 1 }).await, "the partial upload was removed");
}

async fn excess_requests_are_shed_with_503_and_health_still_answers(db: Db) {
    let app = App::start_with(db, Storage::Folder, |o| o.server.max_concurrent_requests = 2, |_| {}).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // Two requests whose bodies are still coming hold both places.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let head = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":";
        stream.write_all(head.as_bytes()).await.unwrap();
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app.http.get(app.url("/api/public/videos")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(response.json::<Value>().await.unwrap()["detail"].is_string());
    assert_eq!(app.get("/health", None).await.0, 200, "the health check is never shed");
    drop(holders);
    let app = &app;
    assert!(
        settles(|| async move { app.get("/api/public/videos", None).await.0 == 200 }).await,
        "the places were given back"
    );
}

async fn an_upload_link_takes_one_complete_put_and_a_cut_off_one_leaves_nothing(db: Db) {
    let app = App::start(db, Storage::Folder, 1 << 20).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let first = mp4_bytes(4000);
    let announced = announce(&app, &token, first.len(), "one shot").await;
    assert_eq!(put_file(&app.http, &announced, first.clone()).await, 200);
    let mut other = mp4_bytes(4000);
    other[100] ^= 0xff;
    assert_eq!(put_file(&app.http, &announced, other.clone()).await, 409, "a second complete PUT");
    let id = announced["video_id"].as_str().unwrap();
    assert_eq!(app.post_json(&format!("/api/videos/{id}/complete"), &json!({}), Some(&token)).await.0, 200);
    assert_eq!(put_file(&app.http, &announced, other).await, 409, "a PUT after complete");
    let (_, detail) = app.get(&format!("/api/videos/{id}"), Some(&token)).await;
    let stored = app.http.get(detail["original_url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&stored[..], &first[..], "the confirmed upload is the first one, unchanged");

    // A PUT cut off halfway leaves nothing that looks like a file, and nothing is recorded.
    let cut = announce(&app, &token, 100_000, "cut off").await;
    let url = reqwest::Url::parse(cut["upload_url"].as_str().unwrap()).unwrap();
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head =
        format!("PUT {}?{} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", url.path(), url.query().unwrap());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&mp4_bytes(40_000)).await.unwrap();
    drop(stream);
    let cut_id = cut["video_id"].as_str().unwrap();
    // Only the first upload's file stays: the cut-off one leaves no temporary file either.
    let app = &app;
    assert!(settles(|| async move { app.files_in_blob_dir() == 1 }).await, "no partial file stayed behind");
    let (status, body) = app.post_json(&format!("/api/videos/{cut_id}/complete"), &json!({}), Some(&token)).await;
    assert_eq!(status, 400, "nothing that looks uploaded: {body}");
}

/// On S3 the link is S3's own: S3 refuses a second PUT (412) through `If-None-Match: *`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_an_upload_link_takes_one_put() {
    let (db, _) = anb_core::testing::postgres().await;
    let app = App::start(db, Storage::Aws, 64 << 20).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let bytes = mp4_bytes(6000);
    let announced = announce(&app, &token, bytes.len(), "one shot on S3").await;
    assert_eq!(announced["upload_headers"]["if-none-match"], "*", "{announced}");
    assert_eq!(put_file(&app.http, &announced, bytes.clone()).await, 200);
    assert_eq!(put_file(&app.http, &announced, bytes.clone()).await, 412);
    let id = announced["video_id"].as_str().unwrap();
    assert_eq!(app.post_json(&format!("/api/videos/{id}/complete"), &json!({}), Some(&token)).await.0, 200);
    assert_eq!(put_file(&app.http, &announced, bytes).await, 412);
}

async fn readiness_tells_the_public_only_what_is_down_and_metrics_can_need_a_token(db: Db) {
    let faults = anb_core::faults::Faults::new();
    let app = App::start_with(
        db,
        Storage::Folder,
        |o| o.metrics_token = Some("scraper-token-0123456789".into()),
        |s| s.backends.store = Arc::new(anb_core::faults::FaultyStore::new(s.backends.store.clone(), faults.clone())),
    )
    .await;
    assert_eq!(app.get("/ready", None).await, (200, json!({"status": "ready", "database": "ok", "queue": "ok"})));
    faults.fail_next("ping", 1);
    let (status, body) = app.get("/ready", None).await;
    assert_eq!(
        (status, body),
        (503, json!({"status": "unavailable", "database": "unavailable", "queue": "ok"})),
        "no error text for the public"
    );

    assert_eq!(app.get("/metrics", None).await.0, 401);
    let wrong = app.http.get(app.url("/metrics")).bearer_auth("scraper-token-0123456788").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.http.get(app.url("/metrics")).bearer_auth("scraper-token-0123456789").send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("anb_http_requests_total"));
}

async fn the_public_cache_holds_a_bounded_number_of_bytes_whatever_the_queries(db: Db) {
    let budget = 32 << 10;
    let app = App::start_with(
        db,
        Storage::Folder,
        |_| {},
        |s| s.public_cache = Arc::new(MicroCache::with_max_bytes(Duration::from_secs(1), budget)),
    )
    .await;
    // 400 distinct long cities (each key about 130 bytes, each answer about 70): several times
    // the budget.
    for i in 0..400 {
        let city = format!("{i:04}{}", "c".repeat(96));
        assert_eq!(app.get(&format!("/api/public/rankings?city={city}"), None).await.0, 200);
    }
    let held = app.state.public_cache.weighed_bytes();
    assert!(held <= budget, "{held} bytes held with a budget of {budget}");
    assert!(held > budget / 4, "it still caches: {held}");
    // One key for every spelling of a city.
    assert_eq!(
        app.get("/api/public/rankings?city=%20CaLi%20", None).await.1,
        app.get("/api/public/rankings?city=cali", None).await.1
    );
}
