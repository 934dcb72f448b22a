// The public page of ANB Video: plain JavaScript on the public API, no framework, no build step.
// Views are sections of index.html chosen by the address's hash (#/, #/rankings, #/mine, ...);
// the content security policy allows no inline script or style, so all behaviour is here and
// the DOM is built with textContent and attributes, never by parsing markup from data.
"use strict";

const GALLERY_PAGE_SIZE = 12;
const RANKINGS_PAGE_SIZE = 20;
// How often "My videos" asks again while a clip is queued or processing.
const POLL_MS = 1000;
// Headers a page may not set itself: the browser sends the right ones.
const FORBIDDEN_HEADERS = new Set(["content-length", "host", "connection"]);

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
};

// ---- Session: the bearer token from sign-in, kept for its lifetime in this browser. ----

const session = {
  load() {
    try {
      const saved = JSON.parse(localStorage.getItem("anb.session") || "null");
      if (saved && saved.expires > Date.now()) return saved;
    } catch (_) { /* a damaged entry is the same as none */ }
    localStorage.removeItem("anb.session");
    return null;
  },
  save(token, email, expiresIn) {
    localStorage.setItem("anb.session", JSON.stringify({ token, email, expires: Date.now() + expiresIn * 1000 }));
  },
  clear() { localStorage.removeItem("anb.session"); },
};

function showSession() {
  const current = session.load();
  document.body.classList.toggle("is-signed-in", !!current);
  $("who").textContent = current ? `(${current.email})` : "";
}

// ---- The API: every failure becomes an Error whose message a person can read. ----

class ApiError extends Error {
  constructor(message, status, fields = {}) {
    super(message);
    this.status = status;
    this.fields = fields; // field name → message, from 422 answers
  }
}

const FIELD_NAMES = {
  email: "Email", password: "Password", password1: "Password", password2: "Repeated password",
  first_name: "First name", last_name: "Last name", city: "City", country: "Country",
  title: "Title", description: "Description", size: "File", page: "Page", page_size: "Page size",
};

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  // Signing in or up carries no token: its 401 is about the password, not a session.
  const current = path.startsWith("/api/auth/") ? null : session.load();
  if (current) headers.Authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (_) {
    throw new ApiError("The server cannot be reached. Check your connection and try again.", 0);
  }
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  throw apiError(response.status, data, response.headers.get("Retry-After"), !!current);
}

function apiError(status, data, retryAfter, hadSession = false) {
  const detail = data && data.detail;
  if (status === 401) {
    if (hadSession) {
      session.clear();
      showSession();
      return new ApiError("Your session has ended. Please sign in again.", status);
    }
    return new ApiError(typeof detail === "string" ? detail : "Please sign in first.", status);
  }
  if (status === 422 && Array.isArray(detail)) {
    const fields = {};
    for (const problem of detail) {
      const name = (problem.loc || []).slice(-1)[0] || "";
      fields[name] = problem.msg;
    }
    const summary = Object.entries(fields).map(([name, msg]) => `${FIELD_NAMES[name] || name}: ${msg}`).join(" · ");
    return new ApiError(summary || "Some fields are not valid.", status, fields);
  }
  if (status === 429) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again in a moment.";
    return new ApiError((typeof detail === "string" ? detail : "Too many requests.") + wait, status);
  }
  if (status >= 500) {
    return new ApiError(status === 503 ? "The service is busy right now. Please try again in a moment." : "Something went wrong on our side. Please try again.", status);
  }
  return new ApiError(typeof detail === "string" ? detail : `The request failed (${status}).`, status);
}

// ---- Messages ----

let noticeTimer;
function notify(message, kind = "info") {
  const notice = $("notice");
  notice.textContent = message;
  notice.dataset.kind = kind;
  clearTimeout(noticeTimer);
  if (message && kind !== "error") noticeTimer = setTimeout(() => { notice.textContent = ""; }, 6000);
}

function showFormError(form, error) {
  form.querySelector(".form-error").textContent = error ? error.message : "";
  for (const span of form.querySelectorAll(".field-error")) span.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  if (!error || !error.fields) return;
  for (const [name, msg] of Object.entries(error.fields)) {
    const input = form.elements[name];
    const span = input && $(`${input.id}-error`);
    if (!span) continue;
    span.textContent = msg;
    input.setAttribute("aria-invalid", "true");
  }
}

async function busy(button, work) {
  button.disabled = true;
  try { return await work(); } finally { button.disabled = false; }
}

// ---- Views ----

const views = {
  gallery: { show: () => loadGallery() },
  rankings: { show: () => loadRankings() },
  signin: { show: () => {} },
  signup: { show: () => {} },
  mine: { show: () => loadMine(), needsSession: true },
};

function route() {
  const name = (location.hash.replace(/^#\/?/, "").split("/")[0]) || "gallery";
  const view = views[name] ? name : "gallery";
  if (views[view].needsSession && !session.load()) {
    notify("Sign in to see and upload your videos.");
    location.hash = "#/signin";
    return;
  }
  for (const section of document.querySelectorAll("[data-view]")) section.hidden = section.dataset.view !== view;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${document.querySelector(`[data-view="${view}"] h1`).textContent} · ANB Video`;
  if (view !== "mine") stopPolling();
  // An error belongs to the view it happened on.
  if ($("notice").dataset.kind === "error") notify("");
  views[view].show();
  // Screen readers and keyboards start at the new view's content.
  if (routedOnce) $("main").focus({ preventScroll: true });
  routedOnce = true;
}
let routedOnce = false;

// ---- Gallery ----

let galleryPage = 1;

async function loadGallery() {
  const list = $("gallery");
  let videos;
  try {
    videos = await api("GET", `/api/public/videos?page=${galleryPage}&page_size=${GALLERY_PAGE_SIZE}`);
  } catch (error) {
    notify(error.message, "error");
    return;
  }
  list.replaceChildren(...videos.map(card));
  $("gallery-empty").hidden = videos.length > 0 || galleryPage > 1;
  $("gallery-page").textContent = `Page ${galleryPage}`;
  $("gallery-prev").disabled = galleryPage === 1;
  $("gallery-next").disabled = videos.length < GALLERY_PAGE_SIZE;
}

function card(video) {
  const titleId = `title-${video.video_id}`;
  const votes = el("span", { class: "votes", text: votesText(video.votes) });
  const play = el("button", { type: "button", class: "play", "aria-label": `Play “${video.title}”` },
    video.poster_url ? el("img", { src: video.poster_url, alt: "", loading: "lazy", width: "640", height: "360" })
      : el("span", { class: "no-poster", text: "No poster" }),
    el("span", { class: "play-icon", "aria-hidden": "true", text: "▶" }));
  const frame = el("div", { class: "frame" }, play);
  play.addEventListener("click", () => {
    const player = el("video", { src: video.processed_url, poster: video.poster_url, controls: true, playsinline: true,
      autoplay: true, "aria-label": video.title });
    frame.replaceChildren(player);
    player.focus();
  });
  const vote = el("button", { type: "button", class: "vote", "aria-describedby": titleId, text: "Vote" });
  vote.addEventListener("click", () => castVote(video, vote, votes));
  return el("li", { class: "card", "data-video": video.video_id },
    frame,
    el("div", { class: "card-body" },
      el("h2", { id: titleId, text: video.title }),
      el("p", { class: "meta", text: `${video.player_name} · ${video.city}, ${video.country}` }),
      el("div", { class: "vote-row" }, vote, votes)));
}

const votesText = (n) => `${n} ${n === 1 ? "vote" : "votes"}`;

async function castVote(video, button, votes) {
  if (!session.load()) {
    notify("Sign in to vote.");
    location.hash = "#/signin";
    return;
  }
  await busy(button, async () => {
    try {
      const answer = await api("POST", `/api/public/videos/${video.video_id}/vote`);
      votes.textContent = votesText(answer.total_votes);
      button.textContent = "Voted";
      button.setAttribute("aria-pressed", "true");
      notify(`Your vote for “${video.title}” is counted.`);
    } catch (error) {
      notify(error.message, "error");
    }
  });
}

// ---- Rankings ----

let rankingsPage = 1;
let rankingsCity = "";

async function loadRankings() {
  const params = new URLSearchParams({ page: rankingsPage, page_size: RANKINGS_PAGE_SIZE });
  if (rankingsCity) params.set("city", rankingsCity);
  let answer;
  try {
    answer = await api("GET", `/api/public/rankings?${params}`);
  } catch (error) {
    notify(error.message, "error");
    return;
  }
  $("rankings").replaceChildren(...answer.rankings.map((r) => el("tr", {},
    el("td", { text: String(r.position) }), el("th", { scope: "row", text: r.username }),
    el("td", { text: `${r.city}, ${r.country}` }), el("td", { text: String(r.votes) }))));
  $("rankings-caption").textContent = rankingsCity ? `Players of ${rankingsCity} by votes` : "Players by votes";
  $("rankings-empty").hidden = answer.rankings.length > 0;
  $("rankings-page").textContent = answer.total_pages > 0 ? `Page ${answer.page} of ${answer.total_pages}` : "";
  $("rankings-prev").disabled = answer.page <= 1;
  $("rankings-next").disabled = answer.page >= answer.total_pages;
}

// ---- Sign in and sign up ----

async function signIn(email, password) {
  const answer = await api("POST", "/api/auth/login", { email, password });
  session.save(answer.access_token, email, answer.expires_in);
  showSession();
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.target;
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      await signIn(form.elements.email.value.trim(), form.elements.password.value);
      showFormError(form, null);
      form.reset();
      notify("Welcome back.");
      location.hash = "#/mine";
    } catch (error) {
      showFormError(form, error);
    }
  });
}

async function onSignUp(event) {
  event.preventDefault();
  const form = event.target;
  const values = Object.fromEntries(["email", "password1", "password2", "first_name", "last_name", "city", "country"]
    .map((name) => [name, name.startsWith("password") ? form.elements[name].value : form.elements[name].value.trim()]));
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      if (values.password1 !== values.password2) throw new ApiError("The passwords do not match.", 0, { password2: "Does not match the password" });
      await api("POST", "/api/auth/signup", values);
      await signIn(values.email, values.password1);
      showFormError(form, null);
      form.reset();
      notify(`Welcome, ${values.first_name}. Upload your first clip.`);
      location.hash = "#/mine";
    } catch (error) {
      showFormError(form, error);
    }
  });
}

// ---- My videos: direct upload with progress, then the status until ready ----

const STATUS_TEXT = { pending: "Queued", processing: "Processing", completed: "Ready", failed: "Failed" };
let maxFileBytes = null;
let pollTimer = null;

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

async function loadLimits() {
  if (maxFileBytes !== null) return;
  try {
    const limits = await api("GET", "/api/upload-limits");
    maxFileBytes = limits.max_file_bytes;
    $("upload-file-hint").textContent = `Up to ${formatBytes(maxFileBytes)}, at most ${limits.max_duration_secs} s; ${limits.containers.join(", ")}.`;
  } catch (_) { /* the server checks the size anyway */ }
}

function formatBytes(n) {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(0)} MB`;
  return `${Math.ceil(n / 1024)} KB`;
}

async function loadMine() {
  loadLimits();
  stopPolling();
  let videos;
  try {
    videos = await api("GET", "/api/videos");
  } catch (error) {
    notify(error.message, "error");
    if (error.status === 401) location.hash = "#/signin";
    return;
  }
  // Details carry the worker's progress and a failure's reason; only unfinished ones change.
  const details = await Promise.all(videos.map((v) =>
    v.status === "completed" ? v : api("GET", `/api/videos/${v.video_id}`).catch(() => v)));
  $("mine").replaceChildren(...details.map(mineItem));
  $("mine-empty").hidden = details.length > 0;
  if (details.some((v) => v.status === "pending" || v.status === "processing") && !$("view-mine").hidden) {
    pollTimer = setTimeout(loadMine, POLL_MS);
  }
}

function mineItem(video) {
  const status = el("span", { class: `status status-${video.status}`, text: STATUS_TEXT[video.status] || video.status });
  const row = el("li", { class: "mine-item", "data-video": video.video_id, "data-status": video.status });
  const thumb = video.poster_url ? el("img", { src: video.poster_url, alt: "", width: "160", height: "90" })
    : el("span", { class: "thumb-empty", "aria-hidden": "true" });
  const info = el("div", { class: "mine-info" },
    el("h3", { text: video.title }),
    el("p", { class: "meta" }, status, ` · ${votesText(video.votes)}`));
  if (video.status === "processing" || video.status === "pending") {
    const percent = Math.round((video.progress || 0) * 100);
    info.append(el("progress", { max: "100", value: String(percent), "aria-label": `Processing “${video.title}”` }));
  }
  if (video.status === "failed") {
    info.append(el("p", { class: "field-error", text: video.error_message || "It could not be processed. Please try another file." }));
  }
  const actions = el("div", { class: "mine-actions" });
  if (video.processed_url) actions.append(el("a", { href: video.processed_url, text: "Watch", "aria-label": `Watch “${video.title}”` }));
  const remove = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete “${video.title}”` });
  remove.addEventListener("click", () => deleteVideo(video, remove));
  actions.append(remove);
  row.append(thumb, info, actions);
  return row;
}

async function deleteVideo(video, button) {
  if (!confirm(`Delete “${video.title}”? This cannot be undone.`)) return;
  await busy(button, async () => {
    try {
      await api("DELETE", `/api/videos/${video.video_id}`);
      notify(`“${video.title}” is deleted.`);
      loadMine();
    } catch (error) {
      notify(error.message, "error");
    }
  });
}

// The file goes straight to storage with the URL the API signs; XMLHttpRequest because fetch
// reports no upload progress.
function putFile(target, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.upload_method || "PUT", target.upload_url);
    for (const [name, value] of Object.entries(target.upload_headers || {})) {
      if (!FORBIDDEN_HEADERS.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* storage answers XML */ }
      reject(apiError(xhr.status, data, xhr.getResponseHeader("Retry-After")));
    });
    xhr.addEventListener("error", () => reject(new ApiError("The upload was interrupted. Check your connection and try again.", 0)));
    xhr.send(file);
  });
}

async function onUpload(event) {
  event.preventDefault();
  const form = event.target;
  const file = form.elements.file.files[0];
  const bar = $("upload-progress");
  const setProgress = (fraction) => {
    const percent = Math.round(fraction * 100);
    $("upload-progress-label").textContent = percent < 100 ? "Uploading" : "Uploaded";
    bar.value = percent;
    $("upload-percent").textContent = `${percent}%`;
  };
  await busy($("upload-submit"), async () => {
    try {
      if (!file) throw new ApiError("Choose a video file.", 0, { file: "Choose a video file" });
      if (maxFileBytes !== null && file.size > maxFileBytes) {
        throw new ApiError(`The file is ${formatBytes(file.size)}: the limit is ${formatBytes(maxFileBytes)}.`, 0, { file: "Too large" });
      }
      showFormError(form, null);
      const target = await api("POST", "/api/videos/uploads", {
        title: form.elements.title.value.trim(),
        description: form.elements.description.value.trim() || undefined,
        size: file.size,
        filename: file.name,
      });
      setProgress(0);
      $("upload-progress-row").hidden = false;
      await putFile(target, file, setProgress);
      setProgress(1);
      await api("POST", target.complete_url);
      form.reset();
      notify("Uploaded. Your clip is being processed; it will show as Ready here.");
      loadMine();
    } catch (error) {
      showFormError(form, error);
    }
  });
}

// ---- Start ----

document.addEventListener("DOMContentLoaded", () => {
  showSession();
  $("signin-form").addEventListener("submit", onSignIn);
  $("signup-form").addEventListener("submit", onSignUp);
  $("upload-form").addEventListener("submit", onUpload);
  $("signout").addEventListener("click", () => {
    session.clear();
    showSession();
    notify("You are signed out.");
    location.hash = "#/";
  });
  $("gallery-prev").addEventListener("click", () => { galleryPage = Math.max(1, galleryPage - 1); loadGallery(); });
  $("gallery-next").addEventListener("click", () => { galleryPage += 1; loadGallery(); });
  $("rankings-prev").addEventListener("click", () => { rankingsPage = Math.max(1, rankingsPage - 1); loadRankings(); });
  $("rankings-next").addEventListener("click", () => { rankingsPage += 1; loadRankings(); });
  $("rankings-form").addEventListener("submit", (event) => {
    event.preventDefault();
    rankingsCity = $("rankings-city").value.trim();
    rankingsPage = 1;
    loadRankings();
  });
  window.addEventListener("hashchange", route);
  route();
});
