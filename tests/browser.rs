//! The public page in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver) against `anb serve` on embedded defaults, as `make run` starts it.
//!
//! Two people sign up through the page. The first uploads a clip through the direct-upload
//! form on a throttled link and the progress bar moves; the status reaches Ready and the
//! poster shows in the gallery. The second plays the clip and votes; the rankings show the first
//! player with one vote. A phone-size window shows the gallery without sideways scrolling.
//! Screenshots land in `target/browser-screenshots/` for people to look at.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::serve::{start, QUICK_PIPELINE};
use support::*;

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);
/// The upload runs on a link this slow (bytes a second), so it takes about two seconds for the
/// test clip and the page has time to show progress; loopback alone would finish at once.
const UPLOAD_SECONDS: u64 = 2;

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; make test installs it from deploy/packages/test.txt)");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = http.get(format!("{url}/status")).send().await;
        if let Ok(status) = status {
            if status.json::<Value>().await.map(|s| s["value"]["ready"] == true).unwrap_or(false) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

/// A new headless Chromium window of the given size.
async fn browser(driver: &Driver, (width, height): (u32, u32)) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        format!("--window-size={width},{height}"), "--lang=en-US"]}),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Evaluate `expression` in the page until it is truthy (at most `within`); its value.
async fn until(client: &Client, expression: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let script = format!("return ({expression}) || null;");
    loop {
        let value = client.execute(&script, vec![]).await.expect("the script runs");
        if !value.is_null() && value != json!(false) {
            return value;
        }
        if Instant::now() > deadline {
            let text = client.execute("return document.body.innerText", vec![]).await.unwrap_or_default();
            panic!("waited {within:?} for `{expression}`; the page says:\n{}", text.as_str().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(client: &Client, fields: &[(&str, &str)]) {
    for (id, value) in fields {
        let input = client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
}

/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{E007}";

/// Controls of the visible view a screen reader could not name: inputs without a label,
/// buttons and links without text or `aria-label`, pictures without `alt`. Panics when the
/// view shows fewer than three controls (the check would be looking at nothing).
async fn unlabelled(client: &Client) -> Value {
    let script = "const shown = (e) => e.offsetParent !== null;
        const named = (e) => (e.getAttribute('aria-label') || e.textContent).trim() !== '';
        const fields = [...document.querySelectorAll('input, textarea, select')].filter(shown);
        const controls = [...document.querySelectorAll('button, a')].filter(shown);
        const pictures = [...document.querySelectorAll('img')].filter(shown);
        return { checked: fields.length + controls.length + pictures.length, unnamed: [
          ...fields.filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')),
          ...controls.filter((e) => !named(e)),
          ...pictures.filter((e) => !e.hasAttribute('alt')),
        ].map((e) => e.outerHTML.slice(0, 120)) };";
    let answer = client.execute(script, vec![]).await.unwrap();
    assert!(answer["checked"].as_u64().unwrap() >= 3, "{answer}");
    answer["unnamed"].clone()
}

async fn click(client: &Client, css: &str) {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

/// Wait until the text of the element `css` contains `text`.
async fn until_text(client: &Client, css: &str, text: &str, within: Duration) {
    until(client, &format!("document.querySelector({css:?}).textContent.includes({text:?})"), within).await;
}

/// Press Delete on the card `card`, confirm, and wait for the notice to contain `notice`.
async fn delete_and_read(client: &Client, card: &str, notice: &str) {
    click(client, &format!("{card} .danger")).await;
    client.accept_alert().await.unwrap();
    until_text(client, "#notice", notice, Duration::from_secs(10)).await;
}

async fn sign_up(client: &Client, base: &str, email: &str, first: &str, last: &str, city: &str) {
    client.goto(&format!("{base}/#/signup")).await.unwrap();
    until(client, "!document.getElementById('view-signup').hidden", Duration::from_secs(10)).await;
    assert_eq!(unlabelled(client).await, json!([]), "the sign-up form");
    fill(
        client,
        &[
            ("signup-first_name", first),
            ("signup-last_name", last),
            ("signup-email", email),
            ("signup-city", city),
            ("signup-country", "Colombia"),
            ("signup-password1", "dunk-dunk-dunk"),
            ("signup-password2", "dunk-dunk-dunk"),
        ],
    )
    .await;
    click(client, "#signup-form button[type=submit]").await;
    // Signed up and in: the page moves to the player's own videos.
    until(
        client,
        "location.hash === '#/mine' && !document.getElementById('view-mine').hidden",
        Duration::from_secs(20),
    )
    .await;
}

fn screenshots_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let dir = dir.join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert_eq!(&png[1..4], b"PNG");
    std::fs::write(screenshots_dir().join(name), png).unwrap();
}

/// Chromium's console: what the page logged, CSP violations and script errors included.
async fn console(driver: &Driver, client: &Client) -> Vec<String> {
    let session = client.session_id().await.unwrap().unwrap();
    let log = format!("{}/session/{session}/se/log", driver.url);
    let answer = json_of(reqwest::Client::new().post(log).json(&json!({"type": "browser"}))).await;
    let entries = answer["value"].as_array().unwrap_or_else(|| panic!("chromedriver's log: {answer}"));
    entries.iter().map(|e| format!("{} {}", e["level"], e["message"])).collect()
}

/// Slow this window's network down (Chromium's emulation), uploads included.
async fn throttle(driver: &Driver, client: &Client, upload_bytes_per_sec: u64) {
    let session = client.session_id().await.unwrap().unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{}/session/{session}/chromium/network_conditions", driver.url))
        .json(&json!({"network_conditions": {"offline": false, "latency": 5,
            "download_throughput": 50_000_000, "upload_throughput": upload_bytes_per_sec}}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.text().await.unwrap());
}

fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("game-winner.mp4");
    generate(&path, &Clip { secs: 4, width: 640, height: 360, fps: 15, pattern: "smpte", ..Clip::default() });
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_use_the_page_from_sign_up_to_rankings() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_file(dir.path(), "pipeline.toml", QUICK_PIPELINE);
    let input = clip(dir.path());
    let serve = start(dir.path(), &pipeline);
    serve.ready().await;
    let driver = driver().await;
    let base = serve.base.as_str();

    // The first player signs up and uploads through the page on a slow link.
    let ana = browser(&driver, DESKTOP).await;
    sign_up(&ana, base, "ana@example.com", "Ana", "Ruiz", "Cali").await;
    assert_eq!(unlabelled(&ana).await, json!([]), "my videos");
    // The limits come from the API and are shown beside the file field.
    until_text(&ana, "#upload-file-hint", "at most", Duration::from_secs(10)).await;
    // A form sent without its file says what is missing.
    click(&ana, "#upload-submit").await;
    until_text(&ana, "#upload-form .form-error", "Choose a video file", Duration::from_secs(5)).await;

    let size = std::fs::metadata(&input).unwrap().len();
    throttle(&driver, &ana, size / UPLOAD_SECONDS).await;
    // Every value the bar takes, as the page sets it.
    ana.execute(
        "window.barValues = []; const bar = document.getElementById('upload-progress');
         new MutationObserver(() => window.barValues.push(bar.value)).observe(bar, {attributes: true, attributeFilter: ['value']});",
        vec![],
    )
    .await
    .unwrap();
    fill(&ana, &[("upload-title", "Game winner"), ("upload-description", "Last second, from the corner.")]).await;
    ana.find(Locator::Id("upload-file")).await.unwrap().send_keys(input.to_str().unwrap()).await.unwrap();
    click(&ana, "#upload-submit").await;
    until(&ana, "document.querySelector('#mine [data-status]')", Duration::from_secs(30)).await;
    let values = ana.execute("return window.barValues", vec![]).await.unwrap();
    let values: Vec<f64> = values.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    eprintln!("the upload's progress bar took the values {values:?}");
    assert!(values.iter().any(|v| *v > 0.0 && *v < 100.0), "the bar moved through the upload: {values:?}");
    assert_eq!(values.last(), Some(&100.0), "and ended full: {values:?}");
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "never backwards: {values:?}");
    assert!(ana.find(Locator::Css(".form-error")).await.unwrap().text().await.unwrap().is_empty());

    // The status follows the worker until the clip is ready, with its poster.
    let ready = "document.querySelector('#mine [data-status=completed] img')";
    until(&ana, ready, Duration::from_secs(120)).await;
    assert_eq!(
        until(&ana, "document.querySelector('#mine .status').textContent", Duration::from_secs(1)).await,
        "Ready"
    );
    screenshot(&ana, "my-videos-desktop.png").await;

    // The gallery shows it with its poster, loaded under the page's CSP.
    ana.goto(&format!("{base}/#/")).await.unwrap();
    let poster = "(() => { const img = document.querySelector('#gallery .card img'); return img && img.complete && img.naturalWidth; })()";
    assert_eq!(until(&ana, poster, Duration::from_secs(10)).await, 160, "the poster, at the pipeline's width");
    // One's own video cannot be voted for, and the page says why.
    click(&ana, "#gallery .card .vote").await;
    until_text(&ana, "#notice", "cannot vote for your own video", Duration::from_secs(10)).await;
    screenshot(&ana, "gallery-desktop.png").await;

    // The second person signs up, plays the clip and votes.
    let leo = browser(&driver, DESKTOP).await;
    sign_up(&leo, base, "leo@example.com", "Leo", "Mora", "Medellín").await;
    leo.goto(&format!("{base}/#/")).await.unwrap();
    until(&leo, "document.querySelector('#gallery .card .play')", Duration::from_secs(10)).await;
    assert_eq!(unlabelled(&leo).await, json!([]), "the gallery");
    // By keyboard: Enter on the focused poster button plays the clip.
    leo.find(Locator::Css("#gallery .card .play")).await.unwrap().send_keys(ENTER).await.unwrap();
    let playing = "(() => { const v = document.querySelector('#gallery .card video');
        if (v && v.error) return 'error ' + v.error.code + ' ' + v.error.message;
        return v && v.readyState >= 2 && v.currentTime > 0.2 && 'playing'; })()";
    assert_eq!(until(&leo, playing, Duration::from_secs(20)).await, "playing");
    click(&leo, "#gallery .card .vote").await;
    until(&leo, "document.querySelector('#gallery .card .votes').textContent === '1 vote'", Duration::from_secs(10))
        .await;
    // A second vote is refused by the API, and the page shows its words.
    leo.goto(&format!("{base}/#/rankings")).await.unwrap();
    leo.goto(&format!("{base}/#/")).await.unwrap();
    until(&leo, "document.querySelector('#gallery .card .vote')", Duration::from_secs(10)).await;
    click(&leo, "#gallery .card .vote").await;
    until_text(&leo, "#notice", "already voted", Duration::from_secs(10)).await;

    // Signing out and in again; a wrong password is refused in the API's words.
    click(&leo, "#signout").await;
    until(&leo, "!document.body.classList.contains('is-signed-in') && location.hash === '#/'", Duration::from_secs(5))
        .await;
    leo.goto(&format!("{base}/#/signin")).await.unwrap();
    fill(&leo, &[("signin-email", "leo@example.com"), ("signin-password", "not-the-password")]).await;
    click(&leo, "#signin-form button[type=submit]").await;
    until(
        &leo,
        "document.querySelector('#signin-form .form-error').textContent === 'Invalid email or password'",
        Duration::from_secs(10),
    )
    .await;
    fill(&leo, &[("signin-password", "dunk-dunk-dunk")]).await;
    // By keyboard: Enter in the password field sends the form.
    leo.find(Locator::Id("signin-password")).await.unwrap().send_keys(ENTER).await.unwrap();
    until(
        &leo,
        "location.hash === '#/mine' && document.body.classList.contains('is-signed-in')",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(unlabelled(&leo).await, json!([]), "my videos");

    // The rankings show the first player with one vote, and the city filter narrows them.
    leo.goto(&format!("{base}/#/rankings")).await.unwrap();
    let first_row = "(() => { const row = document.querySelector('#rankings tr'); return row && row.innerText; })()";
    let row = until(&leo, first_row, Duration::from_secs(10)).await;
    assert_eq!(
        row.as_str().unwrap().split('\t').map(str::trim).collect::<Vec<_>>(),
        ["1", "Ana Ruiz", "Cali, Colombia", "1"]
    );
    fill(&leo, &[("rankings-city", "Medellín")]).await;
    click(&leo, "#rankings-form button").await;
    until(&leo, "!document.getElementById('rankings-empty').hidden", Duration::from_secs(10)).await;
    fill(&leo, &[("rankings-city", "cali")]).await;
    click(&leo, "#rankings-form button").await;
    until(
        &leo,
        &format!("{first_row} && document.querySelectorAll('#rankings tr').length === 1"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(unlabelled(&leo).await, json!([]), "the rankings");
    screenshot(&leo, "rankings-desktop.png").await;

    // A phone: the gallery fits the width, nothing scrolls sideways.
    leo.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    leo.goto(&format!("{base}/#/")).await.unwrap();
    until(&leo, poster, Duration::from_secs(10)).await;
    let widths = leo
        .execute(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth]",
            vec![],
        )
        .await
        .unwrap();
    let [scroll, client, inner] = [0, 1, 2].map(|i| widths[i].as_u64().unwrap());
    assert!(inner <= u64::from(PHONE.0) && scroll <= client, "no horizontal scroll on a phone: {widths}");
    screenshot(&leo, "gallery-phone.png").await;

    // The first player deletes a second upload; the voted clip stays, and the page says why.
    ana.goto(&format!("{base}/#/mine")).await.unwrap();
    fill(&ana, &[("upload-title", "Warm-up")]).await;
    ana.find(Locator::Id("upload-file")).await.unwrap().send_keys(input.to_str().unwrap()).await.unwrap();
    click(&ana, "#upload-submit").await;
    until(&ana, "document.querySelectorAll('#mine [data-video]').length === 2", Duration::from_secs(30)).await;
    delete_and_read(&ana, "#mine [data-video]:first-child", "“Warm-up” is deleted").await;
    until(&ana, "document.querySelectorAll('#mine [data-video]').length === 1", Duration::from_secs(10)).await;
    delete_and_read(&ana, "#mine [data-video]", "with votes cannot be deleted").await;
    assert_eq!(
        until(&ana, "document.querySelector('#mine h3').textContent", Duration::from_secs(1)).await,
        "Game winner"
    );

    // Nothing the page did broke its own policy or threw.
    for client in [&ana, &leo] {
        let lines = console(&driver, client).await;
        eprintln!("the browser's console:\n{}", lines.join("\n"));
        let problems: Vec<String> = lines
            .into_iter()
            .filter(|line| line.contains("Content Security Policy") || line.contains("Uncaught"))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }
    ana.close().await.unwrap();
    leo.close().await.unwrap();
}
