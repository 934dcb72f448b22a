//! Helpers for end-to-end tests: generate inputs with GStreamer, run `anb`, probe outputs with
//! ffprobe/ffmpeg (an independent decoder), read MP4 box order.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod serve;

/// Send a request and read its JSON answer (panics on a transport error or a body that is not
/// JSON: the tests using it expect an answer).
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Longest any single `anb` run may take in a test before it counts as a hang.
const HANG_LIMIT: Duration = Duration::from_secs(120);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A description of a generated input clip.
#[derive(Clone)]
pub struct Clip {
    pub secs: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub audio: bool,
    /// gst-launch `videotestsrc` pattern.
    pub pattern: &'static str,
    /// Write the index (`moov`) at the end, as phones do.
    pub index_at_end: bool,
}

impl Default for Clip {
    fn default() -> Self {
        Clip { secs: 5, width: 160, height: 120, fps: 10, audio: true, pattern: "ball", index_at_end: true }
    }
}

/// Generate an H.264 (+ AAC) MP4 with gst-launch-1.0.
pub fn generate(path: &Path, clip: &Clip) {
    let frames = clip.secs * clip.fps;
    let mut desc = format!(
        "videotestsrc num-buffers={frames} pattern={} ! video/x-raw,format=I420,width={},height={},framerate={}/1 \
         ! x264enc speed-preset=ultrafast key-int-max={} ! h264parse ! queue ! mux. ",
        clip.pattern,
        clip.width,
        clip.height,
        clip.fps,
        clip.fps * 2
    );
    if clip.audio {
        let buffers = clip.secs * 48000 / 1024 + 1;
        desc.push_str(&format!(
            "audiotestsrc num-buffers={buffers} samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
             ! avenc_aac ! aacparse ! queue ! mux. "
        ));
    }
    desc.push_str(&format!("mp4mux name=mux faststart={} ! filesink location={}", !clip.index_at_end, path.display()));
    gst_launch(&desc);
}

/// Generate an audio-only M4A.
pub fn generate_audio_only(path: &Path, secs: u32) {
    let buffers = secs * 48000 / 1024 + 1;
    gst_launch(&format!(
        "audiotestsrc num-buffers={buffers} samplesperbuffer=1024 ! avenc_aac ! aacparse ! mp4mux ! filesink location={}",
        path.display()
    ));
}

pub fn gst_launch(desc: &str) {
    let args: Vec<&str> = desc.split_whitespace().collect();
    let out = Command::new("gst-launch-1.0").arg("-q").args(&args).output().expect("gst-launch-1.0 runs");
    assert!(out.status.success(), "gst-launch-1.0 {desc}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Result of one `anb process --json` run.
#[derive(Debug)]
pub struct Outcome {
    pub exit: i32,
    pub json: Value,
    pub stderr: String,
}

impl Outcome {
    pub fn error_code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.exit, 0, "anb process failed: {}\n{}", self.json, self.stderr);
        self
    }
}

/// Run `anb` with arguments and environment, killing it if it hangs.
pub fn anb(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anb"));
    cmd.args(args).current_dir(repo_root()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env_remove("ANB_PIPELINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("anb starts");
    // Drain both pipes while it runs: a child that writes more than a pipe holds would
    // otherwise block on the write and look hung.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > HANG_LIMIT {
            let _ = child.kill();
            panic!("anb {args:?} hung for {HANG_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `anb process INPUT OUTPUT --json [--pipeline P]`.
pub fn process(input: &Path, output: &Path, pipeline: Option<&Path>, env: &[(&str, &str)]) -> Outcome {
    let (i, o) = (input.to_string_lossy().into_owned(), output.to_string_lossy().into_owned());
    let mut args = vec!["process", i.as_str(), o.as_str(), "--json"];
    let p;
    if let Some(path) = pipeline {
        p = path.to_string_lossy().into_owned();
        args.extend(["--pipeline", p.as_str()]);
    }
    let (exit, stdout, stderr) = anb(&args, env);
    let json = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    Outcome { exit, json, stderr }
}

/// Generate `clip`, run it through the showcase pipeline (`pipeline.toml`) with `env`, and
/// return the output path with the folder that holds it (keep the folder alive while using it).
pub fn showcase(clip: &Clip, env: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    generate(&input, clip);
    process(&input, &output, None, env).assert_ok();
    (dir, output)
}

/// Streams as ffprobe sees them.
#[derive(Debug)]
pub struct Probe {
    pub streams: Vec<Value>,
    pub format: Value,
}

impl Probe {
    pub fn video(&self) -> &Value {
        self.streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream")
    }

    pub fn audio(&self) -> Option<&Value> {
        self.streams.iter().find(|s| s["codec_type"] == "audio")
    }

    pub fn duration(stream: &Value) -> f64 {
        stream["duration"].as_str().and_then(|d| d.parse().ok()).expect("stream duration")
    }

    pub fn format_duration(&self) -> f64 {
        self.format["duration"].as_str().and_then(|d| d.parse().ok()).expect("format duration")
    }
}

pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    Probe { streams: v["streams"].as_array().cloned().unwrap_or_default(), format: v["format"].clone() }
}

/// Top-level MP4 box types in file order.
pub fn top_level_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).expect("read mp4");
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let mut size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned();
        if size == 1 {
            size = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap());
        } else if size == 0 {
            size = (data.len() - at) as u64;
        }
        boxes.push(kind);
        if size < 8 {
            break;
        }
        at += size as usize;
    }
    boxes
}

/// One decoded frame (RGB) as an independent decoder (ffmpeg) renders it.
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Frame {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    pub fn is_black(&self, x: u32, y: u32) -> bool {
        self.pixel(x, y).iter().all(|&c| c < 30)
    }
}

/// The frame shown at `secs`, decoded by ffmpeg (which applies rotation metadata), as PPM.
pub fn frame_at(path: &Path, secs: f64) -> Frame {
    // No seek for the first frame: a still image (a poster) has nothing to seek in, and a seek
    // to 0 can leave ffmpeg with no frame to give.
    let seek = if secs > 0.0 { vec!["-ss".to_string(), secs.to_string()] } else { Vec::new() };
    let out = Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(&seek)
        .arg("-i")
        .arg(path)
        .args(["-frames:v", "1", "-f", "image2pipe", "-c:v", "ppm", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    // PPM: "P6\n<w> <h>\n255\n" then packed RGB.
    let data = out.stdout;
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let rgb = data[at + 1..].to_vec();
    assert_eq!(rgb.len(), (w * h * 3) as usize, "one full frame");
    Frame { width: w, height: h, rgb }
}

/// A pipeline file in `dir` with the given text.
pub fn pipeline_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
