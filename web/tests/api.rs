//! The real router over HTTP on loopback, on PostgreSQL and on SQLite: every route's success
//! and error paths.

mod support;

use std::time::{Duration, SystemTime};

use anb_core::blob::BlobKey;
use anb_core::db::Db;
use anb_core::model::StartOutcome;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

anb_core::on_both_databases!(
    signup_validates_and_login_issues_tokens,
    protected_routes_refuse_missing_tampered_expired_unsigned_and_foreign_tokens,
    an_upload_is_stored_listed_enqueued_and_downloadable_until_its_link_expires,
    bad_uploads_are_refused_and_leave_nothing_stored,
    only_the_owner_sees_or_deletes_a_video_and_voted_videos_stay,
    votes_public_listing_and_rankings,
    operations_routes_answer,
    upload_limits_are_published_for_clients,
    a_refused_file_tells_its_owner_which_limit_it_broke,
    uploads_whose_job_was_lost_are_enqueued_by_the_sweep,
    processing_jobs_whose_attempt_died_and_message_is_gone_are_enqueued_by_the_sweep,
    direct_uploads_go_straight_to_storage_and_are_checked_before_they_are_queued,
    direct_uploads_refuse_wrong_sizes_and_foreign_or_bad_links,
    direct_uploads_whose_file_never_comes_are_removed_by_the_sweep,
    own_reads_show_own_writes_at_once_and_others_changes_soon,
    the_page_is_served_from_the_binary_under_a_policy_of_its_own,
);

const LIMIT: u64 = 2 << 20;

async fn app(db: Db) -> App {
    App::start(db, Storage::Folder, LIMIT).await
}

fn signup_body(email: &str) -> Value {
    json!({"email": email, "password1": "long-enough", "password2": "long-enough",
           "first_name": "Ana", "last_name": "Ruiz", "city": "Cali", "country": "Colombia"})
}

async fn signup_validates_and_login_issues_tokens(db: Db) {
    let app = app(db).await;
    let (status, user) = app.post_json("/api/auth/signup", &signup_body("ana@example.com"), None).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email"], "ana@example.com");
    assert_eq!(
        (user["first_name"].as_str(), user["city"].as_str(), user["country"].as_str()),
        (Some("Ana"), Some("Cali"), Some("Colombia"))
    );
    assert!(Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert!(user.get("password_hash").is_none() && user.get("password1").is_none());

    let (status, body) = app.post_json("/api/auth/signup", &signup_body("ANA@example.com"), None).await;
    assert_eq!((status, body["detail"].as_str()), (400, Some("Email already registered")));
    let mut differ = signup_body("b@example.com");
    differ["password2"] = json!("something-else");
    assert_eq!(app.post_json("/api/auth/signup", &differ, None).await.0, 400);

    for (field, value) in [("password1", json!("short")), ("email", json!("not-an-email")), ("city", json!(""))] {
        let mut body = signup_body("c@example.com");
        body[field] = value;
        if field == "password1" {
            body["password2"] = json!("short");
        }
        let (status, answer) = app.post_json("/api/auth/signup", &body, None).await;
        assert_eq!(status, 422, "{field}: {answer}");
        assert_eq!(answer["detail"][0]["loc"][1], field, "{answer}");
    }
    let mut missing = signup_body("d@example.com");
    missing.as_object_mut().unwrap().remove("country");
    assert_eq!(app.post_json("/api/auth/signup", &missing, None).await.0, 422);
    let malformed = app
        .http
        .post(app.url("/api/auth/signup"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = answer(malformed).await;
    assert_eq!(status, 422, "malformed JSON: {body}");
    assert!(body["detail"].is_array());

    let (status, login) =
        app.post_json("/api/auth/login", &json!({"email": "ana@example.com", "password": "long-enough"}), None).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!((login["token_type"].as_str(), login["expires_in"].as_i64()), (Some("Bearer"), Some(3600)));
    assert!(login["access_token"].as_str().unwrap().split('.').count() == 3);
    for (email, password) in [("ana@example.com", "wrong-password"), ("nobody@example.com", "long-enough")] {
        let (status, body) =
            app.post_json("/api/auth/login", &json!({"email": email, "password": password}), None).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["detail"].is_string());
    }
}

async fn protected_routes_refuse_missing_tampered_expired_unsigned_and_foreign_tokens(db: Db) {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let app = app(db).await;
    let (user_id, token) = app.player("Ana", "Cali").await;
    assert_eq!(app.get("/api/videos", Some(&token)).await.0, 200);
    assert_eq!(app.get("/api/videos/", Some(&token)).await.0, 200, "the trailing slash works too");

    let parts: Vec<&str> = token.split('.').collect();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let claims = |exp: u64| b64(&format!(r#"{{"sub":"{user_id}","iat":{now},"exp":{exp}}}"#));
    let sign = |exp: u64, key: &[u8]| {
        use jsonwebtoken::{encode, EncodingKey, Header};
        encode(&Header::default(), &json!({"sub": user_id, "exp": exp}), &EncodingKey::from_secret(key)).unwrap()
    };
    let bad = [
        String::new(),
        format!("{}.{}.{}", parts[0], claims(now + 100_000), parts[2]), // payload changed, old signature
        sign(now - 10, &anb_core::keys::token_key(SECRET)),             // expired, with the right key
        format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), claims(now + 600)), // unsigned
        sign(now + 600, b"some-other-key"),                             // signed with a foreign key
        format!("{}.{}.{}", b64(r#"{"alg":"HS512","typ":"JWT"}"#), parts[1], parts[2]),
    ];
    for (i, token) in bad.iter().enumerate() {
        let (status, body) = app.get("/api/videos", Some(token)).await;
        assert_eq!(status, 401, "bad token #{i}: {body}");
    }
    assert_eq!(app.get("/api/videos", None).await.0, 401);
    let stranger = app.state.tokens.issue(Uuid::new_v4());
    assert_eq!(app.get("/api/videos", Some(&stranger)).await.0, 401, "a well-signed token of no account");
    let no_bearer =
        app.http.get(app.url("/api/videos")).header("authorization", format!("Token {token}")).send().await.unwrap();
    assert_eq!(no_bearer.status(), 401);
    assert_eq!(no_bearer.headers()["www-authenticate"], "Bearer");
}

async fn an_upload_is_stored_listed_enqueued_and_downloadable_until_its_link_expires(db: Db) {
    let app = app(db).await;
    let (user_id, token) = app.player("Ana", "Cali").await;
    let bytes = mp4_bytes(700_000);
    let (status, body) = app.upload(&token, bytes.clone(), Some("My best dunk")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], user_id.as_str());
    let video_id = body["video_id"].as_str().unwrap().to_string();

    let (status, list) = app.get("/api/videos", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!((list[0]["video_id"].as_str(), list[0]["status"].as_str()), (Some(video_id.as_str()), Some("pending")));
    assert_eq!((list[0]["title"].as_str(), list[0]["votes"].as_i64()), (Some("My best dunk"), Some(0)));
    assert!(list[0]["processed_url"].is_null() && list[0]["processed_at"].is_null() && list[0]["poster_url"].is_null());
    assert!(time::OffsetDateTime::parse(
        list[0]["uploaded_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());

    let (status, detail) = app.get(&format!("/api/videos/{video_id}"), Some(&token)).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!((detail["progress"].as_f64(), detail["error_code"].is_null()), (Some(0.0), true));
    let original_url = detail["original_url"].as_str().unwrap();
    let download = reqwest::get(original_url).await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "video/mp4");
    assert_eq!(download.bytes().await.unwrap().to_vec(), bytes, "the stored upload is the uploaded file");
    let ranged = app.http.get(original_url).header("range", "bytes=4-11").send().await.unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(&ranged.bytes().await.unwrap()[..], b"ftypisom");

    // The same link signed to have expired a minute ago, and one with a forged signature.
    let key = BlobKey::new(format!("uploads/{video_id}.mp4")).unwrap();
    let expired = app.state.signer.sign(&key, Duration::ZERO, SystemTime::now() - Duration::from_secs(60));
    assert_eq!(reqwest::get(&expired).await.unwrap().status(), 403, "expired");
    let forged = original_url.replace("sig=", "sig=00");
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 403, "forged");

    let message = app.state.backends.queue.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.unwrap();
    assert_eq!(message.len(), 1, "the job was enqueued");
    let job: Value = serde_json::from_str(&message[0].body).unwrap();
    assert_eq!(job["video_id"], video_id.as_str());
    let row = app.state.backends.store.video(Uuid::parse_str(&video_id).unwrap()).await.unwrap().unwrap();
    assert!(row.enqueued_at.is_some());
    assert_eq!(row.original_size, Some(bytes.len() as i64));
}

async fn bad_uploads_are_refused_and_leave_nothing_stored(db: Db) {
    let app = app(db).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let stored = || async {
        let store = &app.state.backends.store;
        let ana = store.user_by_email("ana@example.com").await.unwrap().unwrap();
        let rows = store.videos_of(ana.id).await.unwrap();
        (rows.len(), app.state.backends.queue.depth().await.unwrap().visible)
    };

    let text = "just some notes, renamed to clip.mp4\n".repeat(100).into_bytes();
    let (status, body) = app.upload(&token, text, Some("notes")).await;
    assert_eq!((status, body["detail"].is_string()), (400, true), "{body}");

    let (status, body) = app.upload(&token, mp4_bytes(LIMIT as usize + 1000), Some("too big")).await;
    assert_eq!(status, 413, "declared too large: {body}");

    // A container the workers would refuse is refused at the door, by name.
    let mut avi = b"RIFF\0\0\0\0AVI LIST".to_vec();
    avi.resize(4000, 0);
    let (status, body) = app.upload(&token, avi, Some("old camera")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("AVI files are not accepted"), "{body}");

    // No Content-Length: the limit is enforced while the bytes stream in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        std::iter::once(Ok(mp4_bytes(1000))).chain((0..40).map(|_| Ok(vec![1u8; 100_000]))).collect();
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .file_name("clip.mp4");
    let form = reqwest::multipart::Form::new().text("title", "streamed").part("file", part);
    // The server reads and drops the rest, so the client gets the 413 rather than a reset.
    let response =
        app.http.post(app.url("/api/videos/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 413, "streamed too large");

    let (status, body) = app.upload(&token, mp4_bytes(1000), None).await;
    assert_eq!(status, 422, "no title: {body}");
    assert_eq!(body["detail"][0]["loc"][1], "title");
    let no_file = reqwest::multipart::Form::new().text("title", "nothing");
    let (status, _) = answer(
        app.http.post(app.url("/api/videos/upload")).bearer_auth(&token).multipart(no_file).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 422, "no file");
    let (status, _) = answer(
        app.http.post(app.url("/api/videos/upload")).multipart(reqwest::multipart::Form::new()).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 401, "no token");

    assert_eq!(stored().await, (0, 0), "no row and no job for any refused upload");
    assert_eq!(app.files_in_blob_dir(), 0, "no blob (or temporary file) left behind");
}

async fn only_the_owner_sees_or_deletes_a_video_and_voted_videos_stay(db: Db) {
    let app = app(db).await;
    let (_, ana) = app.player("Ana", "Cali").await;
    let (_, bea) = app.player("Bea", "Cali").await;
    let (_, body) = app.upload(&ana, mp4_bytes(1000), Some("mine")).await;
    let video_id = body["video_id"].as_str().unwrap().to_string();
    let path = format!("/api/videos/{video_id}");

    assert_eq!(app.get(&path, Some(&bea)).await.0, 403);
    assert_eq!(app.delete(&path, &bea).await.0, 403);
    assert_eq!(app.get(&format!("/api/videos/{}", Uuid::new_v4()), Some(&ana)).await.0, 404);
    assert_eq!(app.get("/api/videos/not-a-uuid", Some(&ana)).await.0, 404);
    assert!(app.get("/api/videos", Some(&bea)).await.1.as_array().unwrap().is_empty());

    let (status, body) = app.delete(&path, &ana).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["video_id"].as_str(), body["message"].is_string()), (Some(video_id.as_str()), true));
    assert_eq!(app.get(&path, Some(&ana)).await.0, 404);
    let key = BlobKey::new(format!("uploads/{video_id}.mp4")).unwrap();
    assert!(!app.state.backends.blobs.exists(&key).await.unwrap(), "the blob went with the row");

    let voted = completed(&app, &ana, "voted").await;
    assert_eq!(app.post_json(&format!("/api/public/videos/{voted}/vote"), &json!({}), Some(&bea)).await.0, 200);
    let (status, body) = app.delete(&format!("/api/videos/{voted}"), &ana).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(app.get(&format!("/api/videos/{voted}"), Some(&ana)).await.1["votes"], 1);
}

/// Upload through the API, then take the video to `completed` as a worker would.
async fn completed(app: &App, token: &str, title: &str) -> String {
    completed_with(app, token, title, None).await
}

/// As `completed`, with a poster stored under `poster` when given.
async fn completed_with(app: &App, token: &str, title: &str, poster: Option<&'static [u8]>) -> String {
    let (status, body) = app.upload(token, mp4_bytes(1000), Some(title)).await;
    assert_eq!(status, 201);
    let id = Uuid::parse_str(body["video_id"].as_str().unwrap()).unwrap();
    let store = &app.state.backends.store;
    let StartOutcome::Started { attempt, .. } = store.start_processing(id, Duration::from_secs(60)).await.unwrap()
    else {
        panic!()
    };
    let key = format!("processed/{id}.mp4");
    app.state
        .backends
        .blobs
        .put_stream(
            &BlobKey::new(&key).unwrap(),
            Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"processed"))])),
        )
        .await
        .unwrap();
    let poster_key = format!("posters/{id}-{attempt}.jpg");
    if let Some(bytes) = poster {
        let body = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from_static(bytes))]));
        app.state.backends.blobs.put_stream(&BlobKey::new(&poster_key).unwrap(), body).await.unwrap();
    }
    assert!(store.complete(id, attempt, &key, poster.map(|_| poster_key.as_str())).await.unwrap());
    id.to_string()
}

async fn votes_public_listing_and_rankings(db: Db) {
    let app = app(db).await;
    let (_, zoe) = app.player("Zoe", "Cali").await;
    let (_, ana) = app.player("Ana", "Bogotá").await;
    let (_, bea) = app.player("Bea", "cali").await;
    let voters: Vec<String> = {
        let mut v = Vec::new();
        for name in ["V1", "V2", "V3"] {
            v.push(app.player(name, "Medellín").await.1);
        }
        v
    };
    let zoe1 = completed(&app, &zoe, "zoe 1").await;
    let ana1 = completed_with(&app, &ana, "ana 1", Some(b"poster")).await;
    let bea1 = completed(&app, &bea, "bea 1").await;
    let (_, pending) = app.upload(&zoe, mp4_bytes(100), Some("pending")).await;
    let pending = pending["video_id"].as_str().unwrap().to_string();

    for (video, n) in [(&zoe1, 3), (&ana1, 2), (&bea1, 2)] {
        for (i, voter) in voters[..n].iter().enumerate() {
            let (status, body) =
                app.post_json(&format!("/api/public/videos/{video}/vote"), &json!({}), Some(voter)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["total_votes"], i as i64 + 1);
            assert_eq!(body["video_id"], video.as_str());
        }
    }
    let vote = |video: String, token: Option<String>| {
        let app = &app;
        async move { app.post_json(&format!("/api/public/videos/{video}/vote"), &json!({}), token.as_deref()).await }
    };
    assert_eq!(vote(zoe1.clone(), Some(voters[0].clone())).await.0, 400, "twice");
    assert_eq!(vote(pending.clone(), Some(voters[0].clone())).await.0, 400, "not completed");
    assert_eq!(vote(Uuid::new_v4().to_string(), Some(voters[0].clone())).await.0, 404, "unknown");
    assert_eq!(vote(zoe1.clone(), None).await.0, 401, "anonymous");

    let (status, page1) = app.get("/api/public/videos?page=1&page_size=2", None).await;
    assert_eq!(status, 200, "{page1}");
    let (_, page2) = app.get("/api/public/videos?page=2&page_size=2", None).await;
    let listed: Vec<&str> = page1
        .as_array()
        .unwrap()
        .iter()
        .chain(page2.as_array().unwrap())
        .map(|v| v["video_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![bea1.as_str(), ana1.as_str(), zoe1.as_str()], "completed only, newest first");
    let zoe_row = &page2[0];
    assert_eq!(
        (zoe_row["player_name"].as_str(), zoe_row["city"].as_str(), zoe_row["votes"].as_i64()),
        (Some("Zoe Player"), Some("Cali"), Some(3))
    );
    let processed = reqwest::get(zoe_row["processed_url"].as_str().unwrap()).await.unwrap();
    assert_eq!(processed.bytes().await.unwrap().as_ref(), b"processed");
    // A poster where the worker stored one (signed like the video), null where it did not.
    assert!(zoe_row["poster_url"].is_null(), "{zoe_row}");
    let ana_row = &page1[1];
    let poster = reqwest::get(ana_row["poster_url"].as_str().unwrap()).await.unwrap();
    assert_eq!(poster.bytes().await.unwrap().as_ref(), b"poster");
    let (_, ana_list) = app.get("/api/videos", Some(&ana)).await;
    let (_, ana_detail) = app.get(&format!("/api/videos/{ana1}"), Some(&ana)).await;
    assert!(ana_list[0]["poster_url"].is_string() && ana_detail["poster_url"].is_string(), "{ana_list} {ana_detail}");

    let (status, r) = app.get("/api/public/rankings", None).await;
    assert_eq!(status, 200, "{r}");
    let names: Vec<(&str, i64, i64)> = r["rankings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["username"].as_str().unwrap(), e["votes"].as_i64().unwrap(), e["position"].as_i64().unwrap()))
        .collect();
    assert_eq!(names, vec![("Zoe Player", 3, 1), ("Ana Player", 2, 2), ("Bea Player", 2, 3)], "ties in name order");
    assert_eq!(
        (r["total"].as_i64(), r["page"].as_i64(), r["page_size"].as_i64(), r["total_pages"].as_i64()),
        (Some(3), Some(1), Some(10), Some(1))
    );

    let (_, cali) = app.get("/api/public/rankings?city=Cali&page_size=1&page=2", None).await;
    assert_eq!(cali["rankings"][0]["username"], "Bea Player", "{cali}");
    assert_eq!(cali["rankings"][0]["position"], 2);
    assert_eq!((cali["total"].as_i64(), cali["total_pages"].as_i64()), (Some(2), Some(2)));
    for bad in ["page_size=101", "page_size=0", "page=0", "page=x"] {
        assert_eq!(app.get(&format!("/api/public/rankings?{bad}"), None).await.0, 422, "{bad}");
        assert_eq!(app.get(&format!("/api/public/videos?{bad}"), None).await.0, 422, "{bad}");
    }
}

async fn upload_limits_are_published_for_clients(db: Db) {
    let app = app(db).await;
    let response = app.http.get(app.url("/api/upload-limits")).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let (status, limits) = answer(response).await;
    assert_eq!(status, 200, "public: no token needed");
    assert_eq!(limits["max_file_bytes"], LIMIT);
    let defaults = anb_media::InputLimits::default();
    assert_eq!(limits["max_width"], defaults.max_width);
    assert_eq!(limits["max_fps"], defaults.max_fps);
    assert_eq!(limits["max_streams"], defaults.max_streams);
    assert_eq!(limits["containers"], serde_json::json!(["mp4", "mov", "3gp", "mkv", "webm"]));
    assert!(limits["video_codecs"].as_array().unwrap().contains(&"hevc".into()));
    assert!(limits["audio_codecs"].as_array().unwrap().contains(&"aac".into()));
}

async fn a_refused_file_tells_its_owner_which_limit_it_broke(db: Db) {
    let app = app(db).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let store = app.state.backends.store.clone();
    let mut ids = Vec::new();
    for (title, retryable) in [("refused", false), ("platform trouble", true)] {
        let (status, body) = app.upload(&token, mp4_bytes(1000), Some(title)).await;
        assert_eq!(status, 201, "{body}");
        let id: Uuid = body["video_id"].as_str().unwrap().parse().unwrap();
        let StartOutcome::Started { attempt, .. } =
            store.start_processing(id, std::time::Duration::from_secs(30)).await.unwrap()
        else {
            panic!("started")
        };
        let (code, message) = if retryable {
            ("pipeline-stalled", "no progress for 60 s in /srv/anb/pipeline.toml")
        } else {
            ("input-too-large", "the picture is 7680×4320: more than the limit max_width = 4096")
        };
        assert!(store.fail(id, attempt, code.parse().unwrap(), message, retryable).await.unwrap());
        ids.push(id);
    }
    let (_, refused) = app.get(&format!("/api/videos/{}", ids[0]), Some(&token)).await;
    assert_eq!(refused["error_code"], "input-too-large");
    assert_eq!(refused["error_message"], "the picture is 7680×4320: more than the limit max_width = 4096");
    let (_, trouble) = app.get(&format!("/api/videos/{}", ids[1]), Some(&token)).await;
    assert_eq!(trouble["error_code"], "pipeline-stalled");
    assert!(trouble["error_message"].is_null(), "the platform's own failures stay inside: {trouble}");
}

async fn operations_routes_answer(db: Db) {
    let app = app(db).await;
    let (status, health) = app.get("/health", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("healthy")));
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let (status, ready) = app.get("/ready", None).await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")), "{ready}");

    let response = app.http.get(app.url("/no/such/route")).send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"), "every answer carries a request id");
    let (status, body) = answer(response).await;
    assert_eq!((status, body["detail"].as_str()), (404, Some("Not Found")));

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"anb_http_requests_total{method="GET",route="/health",status="200"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"anb_http_request_duration_seconds_count{route="/ready"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"anb_queue_messages{state="visible"} 0"#), "{metrics}");

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/videos"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

    let (status, spec) = app.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut paths: Vec<&str> = spec["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/auth/login",
            "/api/auth/signup",
            "/api/public/rankings",
            "/api/public/videos",
            "/api/public/videos/{id}/vote",
            "/api/upload-limits",
            "/api/videos",
            "/api/videos/upload",
            "/api/videos/uploads",
            "/api/videos/{id}",
            "/api/videos/{id}/complete",
            "/files/{key}",
            "/health",
            "/metrics",
            "/ready",
        ],
        "every route is documented"
    );
    assert!(spec["paths"]["/api/videos/{id}"]["delete"]["responses"]["400"].is_object());
    assert!(spec["paths"]["/files/{key}"]["put"]["responses"]["413"].is_object(), "uploads to signed links");
    assert!(spec["components"]["schemas"]["VideoDetail"]["properties"]["error_code"].is_object());
    assert!(spec["components"]["schemas"]["UploadLimits"]["properties"]["max_fps"].is_object());
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = docs.text().await.unwrap();
    assert!(page.contains("/openapi.json"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "the docs page loads nothing from elsewhere"
    );
}

async fn uploads_whose_job_was_lost_are_enqueued_by_the_sweep(db: Db) {
    let app = app(db).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let (_, body) = app.upload(&token, mp4_bytes(1000), Some("lost job")).await;
    let id = Uuid::parse_str(body["video_id"].as_str().unwrap()).unwrap();
    // As if the queue had been down: the message never arrived.
    let queue = &app.state.backends.queue;
    let lost = queue.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.unwrap();
    queue.delete(&lost[0].receipt).await.unwrap();
    forget_enqueued(&app, id).await;

    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(anb_web::sweep_once(&app.state, later).await.unwrap(), 1);
    let again = queue.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&again[0].body).unwrap()["video_id"], id.to_string());
    assert_eq!(anb_web::sweep_once(&app.state, later).await.unwrap(), 0, "sent once");
}

async fn processing_jobs_whose_attempt_died_and_message_is_gone_are_enqueued_by_the_sweep(db: Db) {
    let app = app(db).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let (_, body) = app.upload(&token, mp4_bytes(1000), Some("stranded")).await;
    let id = Uuid::parse_str(body["video_id"].as_str().unwrap()).unwrap();
    // A worker started it, then died; its message was dead-lettered by receives that were not
    // the job's. The row says `processing` and nothing will ever come for it.
    let queue = &app.state.backends.queue;
    let lost = queue.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.unwrap();
    assert!(matches!(
        app.state.backends.store.start_processing(id, Duration::from_secs(60)).await.unwrap(),
        anb_core::model::StartOutcome::Started { .. }
    ));
    queue.delete(&lost[0].receipt).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let earlier = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert_eq!(anb_web::requeue_stuck(&app.state, earlier).await.unwrap(), 0, "its attempt may still be alive");
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(anb_web::requeue_stuck(&app.state, now).await.unwrap(), 1);
    let again = queue.receive(1, Duration::from_secs(2), Duration::from_secs(30)).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&again[0].body).unwrap()["video_id"], id.to_string());
    assert_eq!(anb_web::requeue_stuck(&app.state, now).await.unwrap(), 0, "once per window");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("anb_stuck_jobs_requeued_total 1\n"), "an alarm can watch it: {metrics}");
}

async fn forget_enqueued(app: &App, id: Uuid) {
    anb_core::db::on_pool!(&app.state.backends.db, pool => {
        sqlx::query("UPDATE videos SET enqueued_at = NULL WHERE id = $1").bind(id).execute(pool).await.unwrap();
    });
}

/// The production shape: PostgreSQL, S3 and SQS (moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_and_sqs_an_upload_streams_to_the_bucket_and_the_job_reaches_the_queue() {
    let (db, _) = anb_core::testing::postgres().await;
    let app = App::start(db, Storage::Aws, 64 << 20).await;
    let (_, token) = app.player("Ana", "Cali").await;
    // Larger than one multipart part, so the upload really goes up in parts.
    let bytes = mp4_bytes(11 << 20);
    let (status, body) = app.upload(&token, bytes.clone(), Some("on S3")).await;
    assert_eq!(status, 201, "{body}");
    let video_id = body["video_id"].as_str().unwrap();
    let (_, detail) = app.get(&format!("/api/videos/{video_id}"), Some(&token)).await;
    let url = detail["original_url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "an S3 presigned URL: {url}");
    assert_eq!(reqwest::get(url).await.unwrap().bytes().await.unwrap().len(), bytes.len());
    let message = app.state.backends.queue.receive(1, Duration::from_secs(5), Duration::from_secs(30)).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&message[0].body).unwrap()["video_id"], video_id);
    let (status, ready) = app.get("/ready", None).await;
    assert_eq!(status, 200, "{ready}");
}

/// The jobs waiting in the queue (received and acknowledged, so each is seen once).
async fn take_jobs(app: &App) -> Vec<String> {
    let queue = &app.state.backends.queue;
    let received = queue.receive(10, Duration::from_secs(1), Duration::from_secs(30)).await.unwrap();
    let mut ids = Vec::new();
    for message in received {
        ids.push(serde_json::from_str::<Value>(&message.body).unwrap()["video_id"].as_str().unwrap().to_string());
        queue.delete(&message.receipt).await.unwrap();
    }
    ids
}

async fn direct_uploads_go_straight_to_storage_and_are_checked_before_they_are_queued(db: Db) {
    let app = app(db).await;
    let (user_id, token) = app.player("Ana", "Cali").await;
    let (_, other) = app.player("Beto", "Cali").await;
    let bytes = mp4_bytes(300_000);
    let announced = announce(&app, &token, bytes.len(), "direct").await;
    let id = announced["video_id"].as_str().unwrap();
    assert_eq!(announced["user_id"], user_id);
    assert_eq!(announced["upload_method"], "PUT");
    assert_eq!(announced["upload_headers"]["content-length"], bytes.len().to_string());
    assert_eq!(announced["complete_url"], format!("/api/videos/{id}/complete"));
    let complete = format!("/api/videos/{id}/complete");

    // Announced, not yet sent: listed as pending, nothing queued, and `complete` says why not.
    let (_, mine) = app.get("/api/videos", Some(&token)).await;
    assert_eq!(mine[0]["status"], "pending");
    let (status, body) = app.post_json(&complete, &json!({}), Some(&token)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not been uploaded"), "{body}");
    assert!(take_jobs(&app).await.is_empty());

    // A text file sent to the link is refused at `complete` and removed; the link still works.
    assert_eq!(put_file(&app.http, &announced, vec![b'x'; bytes.len()]).await, 200);
    let (status, body) = app.post_json(&complete, &json!({}), Some(&token)).await;
    assert_eq!((status, body["detail"].as_str().unwrap()), (400, "The file is not a video (unrecognised container)"));
    assert_eq!(app.files_in_blob_dir(), 0, "the refused bytes are gone");

    assert_eq!(put_file(&app.http, &announced, bytes.clone()).await, 200);
    let (status, body) = app.post_json(&complete, &json!({}), Some(&other)).await;
    assert_eq!(status, 403, "someone else's upload: {body}");
    let (status, body) = app.post_json(&complete, &json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["video_id"].as_str(), body["status"].as_str(), body["size"].as_u64()),
        (Some(id), Some("pending"), Some(bytes.len() as u64))
    );
    assert_eq!(take_jobs(&app).await, vec![id.to_string()]);
    // Completing again answers the same and queues nothing more.
    let (status, again) = app.post_json(&complete, &json!({}), Some(&token)).await;
    assert_eq!((status, &again), (200, &body));
    assert!(take_jobs(&app).await.is_empty(), "queued once");

    // The stored original is the uploaded file, byte for byte.
    let (_, detail) = app.get(&format!("/api/videos/{id}"), Some(&token)).await;
    let original = app.http.get(detail["original_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(original.bytes().await.unwrap(), bytes);
    let (status, _) =
        app.post_json("/api/videos/00000000-0000-0000-0000-000000000000/complete", &json!({}), Some(&token)).await;
    assert_eq!(status, 404);
}

async fn direct_uploads_refuse_wrong_sizes_and_foreign_or_bad_links(db: Db) {
    let app = app(db).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let (status, body) =
        app.post_json("/api/videos/uploads", &json!({"title": "big", "size": LIMIT + 1}), Some(&token)).await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = app.post_json("/api/videos/uploads", &json!({"size": 0}), Some(&token)).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["detail"].as_array().unwrap().iter().map(|d| d["loc"][1].as_str().unwrap()).collect();
    assert_eq!(fields, ["title", "size"], "{body}");
    let (status, _) = app.post_json("/api/videos/uploads", &json!({"title": "no size"}), Some(&token)).await;
    assert_eq!(status, 422);
    let (status, _) = app.post_json("/api/videos/uploads", &json!({"title": "t", "size": 5}), None).await;
    assert_eq!(status, 401);

    let bytes = mp4_bytes(100_000);
    let announced = announce(&app, &token, bytes.len(), "sizes").await;
    let url = announced["upload_url"].as_str().unwrap();
    // A declared length other than the signed one, a body that runs past it without declaring
    // it (chunked), one that stops short, and a link whose size or signature was edited.
    let status = app.http.put(url).body(mp4_bytes(50)).send().await.unwrap().status();
    assert_eq!(status, 400);
    let chunked = |data: Vec<u8>| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
    };
    let status = app.http.put(url).body(chunked(mp4_bytes(200_000))).send().await.unwrap().status();
    assert_eq!(status, 413);
    let status = app.http.put(url).body(chunked(bytes[..1000].to_vec())).send().await.unwrap().status();
    assert_eq!(status, 400);
    let edited = url.replace(&format!("size={}", bytes.len()), "size=999999999");
    assert_eq!(app.http.put(&edited).body(vec![0u8; 10]).send().await.unwrap().status(), 403);
    let download_link = url.split_once("&size=").map(|(a, b)| format!("{a}&{}", b.split_once('&').unwrap().1)).unwrap();
    assert_eq!(app.http.put(&download_link).body(vec![0u8; 10]).send().await.unwrap().status(), 403);
    assert_eq!(app.http.get(url).send().await.unwrap().status(), 403, "an upload link does not download");
    assert_eq!(app.files_in_blob_dir(), 0, "no refused body left anything behind");
    assert_eq!(put_file(&app.http, &announced, bytes).await, 200);
    assert_eq!(app.files_in_blob_dir(), 1);
}

async fn direct_uploads_whose_file_never_comes_are_removed_by_the_sweep(db: Db) {
    let app = app(db).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let bytes = mp4_bytes(10_000);
    let never = announce(&app, &token, 123, "never sent").await;
    let half = announce(&app, &token, bytes.len(), "sent, never completed").await;
    assert_eq!(put_file(&app.http, &half, bytes.clone()).await, 200);
    let done = announce(&app, &token, bytes.len(), "completed").await;
    assert_eq!(put_file(&app.http, &done, bytes).await, 200);
    let done_id = done["video_id"].as_str().unwrap();
    assert_eq!(app.post_json(&format!("/api/videos/{done_id}/complete"), &json!({}), Some(&token)).await.0, 200);

    let earlier = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert_eq!(anb_web::remove_abandoned(&app.state, earlier).await.unwrap(), 0, "they may still come");
    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(anb_web::remove_abandoned(&app.state, later).await.unwrap(), 2);
    for gone in [&never, &half] {
        let (status, _) = app.get(&format!("/api/videos/{}", gone["video_id"].as_str().unwrap()), Some(&token)).await;
        assert_eq!(status, 404);
    }
    assert_eq!(app.get(&format!("/api/videos/{done_id}"), Some(&token)).await.0, 200);
    assert_eq!(app.files_in_blob_dir(), 1, "only the completed upload's file remains");
}

/// The production shape of a direct upload: the client PUTs to S3 itself; the job goes to SQS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_direct_upload_is_put_to_the_bucket_by_the_client_and_queued_on_completion() {
    let (db, _) = anb_core::testing::postgres().await;
    let app = App::start(db, Storage::Aws, 64 << 20).await;
    let (_, token) = app.player("Ana", "Cali").await;
    let bytes = mp4_bytes(6 << 20);
    let announced = announce(&app, &token, bytes.len(), "direct to S3").await;
    let url = announced["upload_url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature=") && !url.starts_with(&app.base), "straight to S3: {url}");
    assert_eq!(put_file(&app.http, &announced, bytes.clone()).await, 200);
    let id = announced["video_id"].as_str().unwrap();
    let (status, body) = app.post_json(&format!("/api/videos/{id}/complete"), &json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(take_jobs(&app).await, vec![id.to_string()]);
}

/// `GET /api/videos` and `/api/videos/{id}` are answered from a one-second per-player cache:
/// a player's own writes through the web show at once, a worker's change shows within the
/// cache's second, and one player's cached answer is never another's.
async fn own_reads_show_own_writes_at_once_and_others_changes_soon(db: Db) {
    let app = app(db).await;
    let (_, ana) = app.player("Ana", "Cali").await;
    let (_, bea) = app.player("Bea", "Cali").await;
    let ids = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|v| v["video_id"].as_str().unwrap().to_string()).collect()
    };

    assert_eq!(app.get("/api/videos", Some(&ana)).await.1, json!([]), "read (and cached) before any upload");
    let (status, body) = app.upload(&ana, mp4_bytes(1000), Some("first")).await;
    assert_eq!(status, 201, "{body}");
    let first = body["video_id"].as_str().unwrap().to_string();
    assert_eq!(ids(&app.get("/api/videos", Some(&ana)).await.1), vec![first.clone()], "an upload shows at once");
    let (_, detail) = app.get(&format!("/api/videos/{first}"), Some(&ana)).await;
    assert_eq!(detail["status"], "pending");

    let announced = announce(&app, &ana, 1000, "direct").await;
    let direct = announced["video_id"].as_str().unwrap().to_string();
    let mut listed = ids(&app.get("/api/videos", Some(&ana)).await.1);
    listed.sort();
    let mut expected = vec![first.clone(), direct.clone()];
    expected.sort();
    assert_eq!(listed, expected, "an announced direct upload shows at once");
    assert_eq!(app.get(&format!("/api/videos/{direct}"), Some(&ana)).await.1["status"], "pending");
    assert_eq!(put_file(&app.http, &announced, mp4_bytes(1000)).await, 200);
    assert_eq!(app.post_json(&format!("/api/videos/{direct}/complete"), &json!({}), Some(&ana)).await.0, 200);
    let (_, after_complete) = app.get(&format!("/api/videos/{direct}"), Some(&ana)).await;
    assert_eq!(after_complete["status"], "pending", "{after_complete}");

    // Another player never sees Ana's cached answers.
    assert_eq!(app.get("/api/videos", Some(&bea)).await.1, json!([]));
    assert_eq!(app.get(&format!("/api/videos/{first}"), Some(&bea)).await.0, 403);

    // A worker (another process) completes the first video: the owner sees it soon, unasked.
    let id = Uuid::parse_str(&first).unwrap();
    let store = &app.state.backends.store;
    let StartOutcome::Started { attempt, .. } = store.start_processing(id, Duration::from_secs(60)).await.unwrap()
    else {
        panic!()
    };
    assert!(store.complete(id, attempt, &format!("processed/{id}.mp4"), None).await.unwrap());
    assert!(
        settles(|| async { app.get(&format!("/api/videos/{first}"), Some(&ana)).await.1["status"] == "completed" })
            .await,
        "the detail shows the worker's completion"
    );
    assert!(
        settles(|| async {
            app.get("/api/videos", Some(&ana)).await.1.as_array().unwrap().iter().any(|v| v["status"] == "completed")
        })
        .await,
        "the list shows the worker's completion"
    );

    // A delete shows at once in the list and the detail.
    assert_eq!(app.delete(&format!("/api/videos/{direct}"), &ana).await.0, 200);
    assert_eq!(ids(&app.get("/api/videos", Some(&ana)).await.1), vec![first.clone()]);
    assert_eq!(app.get(&format!("/api/videos/{direct}"), Some(&ana)).await.0, 404);
    assert_eq!(app.get("/api/videos/not-a-uuid", Some(&ana)).await.0, 404);
    // Every route with a video id answers a malformed one with 404, before touching anything.
    assert_eq!(app.delete("/api/videos/not-a-uuid", &ana).await, (404, json!({"detail": "Video not found"})));
    for path in ["/api/videos/not-a-uuid/complete", "/api/public/videos/not-a-uuid/vote"] {
        assert_eq!(
            app.post_json(path, &json!({}), Some(&ana)).await,
            (404, json!({"detail": "Video not found"})),
            "{path}"
        );
    }
}

async fn the_page_is_served_from_the_binary_under_a_policy_of_its_own(db: Db) {
    for storage in [Storage::Folder, Storage::Aws] {
        let app = App::start(db.clone(), storage, LIMIT).await;
        let page = app.http.get(app.url("/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert_eq!(header("content-type"), "text/html; charset=utf-8");
        assert_eq!(
            (header("x-content-type-options").as_str(), header("x-frame-options").as_str()),
            ("nosniff", "DENY")
        );
        assert_eq!(header("referrer-policy"), "no-referrer", "signed links stay on the site");
        // Scripts, styles and calls: this site only. Pictures, media and uploads: also the
        // origin of the links the blob store signs (this server's /files, or S3).
        let csp = header("content-security-policy");
        let blobs = app
            .state
            .backends
            .blobs
            .presign_get(&BlobKey::new("x/y.jpg").unwrap(), Duration::from_secs(60))
            .await
            .unwrap();
        let origin = blobs.split('/').take(3).collect::<Vec<_>>().join("/");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            &format!("img-src 'self' {origin}"),
            &format!("media-src 'self' {origin}"),
            &format!("connect-src 'self' {origin}"),
        ] {
            assert!(csp.split("; ").any(|d| d == directive), "{directive} in {csp}");
        }
        let html = page.text().await.unwrap();
        // Nothing inline (the policy would refuse it) and nothing from elsewhere.
        assert!(
            !html.contains("<script>") && !html.contains("<style") && !html.contains(" style="),
            "no inline script or style"
        );
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "nothing from another site");
        for (path, kind) in
            [("/app.js", "text/javascript"), ("/app.css", "text/css"), ("/favicon.svg", "image/svg+xml")]
        {
            assert!(html.contains(&format!("\"{path}\"")), "the page uses {path}");
            let asset = app.http.get(app.url(path)).send().await.unwrap();
            assert_eq!(asset.status(), 200, "{path}");
            assert!(asset.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
            let etag = asset.headers()["etag"].clone();
            let body = asset.text().await.unwrap();
            assert!(!body.contains("innerHTML"), "{path}: the page builds its DOM from text, never from markup");
            let again = app.http.get(app.url(path)).header("if-none-match", etag).send().await.unwrap();
            assert_eq!(again.status(), 304, "{path}: revalidated, not sent again");
        }
        // The API's own answers are unchanged around it.
        assert_eq!(app.get("/no-such-page", None).await, (404, json!({"detail": "Not Found"})));
    }
}
