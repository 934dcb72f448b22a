//! ECS task scale-in protection: while a task runs jobs, ask the ECS agent to protect it, so
//! the service's autoscaling never stops a busy worker; drop the protection when idle. Only
//! when `ECS_AGENT_URI` is set (it is, on ECS).

use std::time::Duration;

/// The protection asked for per request; renewed while jobs keep running.
const EXPIRES_IN_MINUTES: u64 = 60;

#[derive(Clone)]
pub struct ScaleInProtection {
    endpoint: Option<String>,
    http: reqwest::Client,
}

impl ScaleInProtection {
    pub fn from_env() -> Self {
        let endpoint = std::env::var("ECS_AGENT_URI")
            .ok()
            .map(|uri| format!("{}/task-protection/v1/state", uri.trim_end_matches('/')));
        ScaleInProtection::new(endpoint)
    }

    pub fn new(endpoint: Option<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        ScaleInProtection { endpoint, http }
    }

    /// Protect (`true`) or release (`false`) the task. Failures are logged: protection is a
    /// safety net, not a reason to stop working.
    pub async fn set(&self, protected: bool) {
        let Some(endpoint) = &self.endpoint else { return };
        let body = if protected {
            serde_json::json!({ "ProtectionEnabled": true, "ExpiresInMinutes": EXPIRES_IN_MINUTES })
        } else {
            serde_json::json!({ "ProtectionEnabled": false })
        };
        match self.http.put(endpoint).json(&body).send().await {
            Ok(r) if r.status().is_success() => tracing::debug!(protected, "task scale-in protection set"),
            Ok(r) => tracing::warn!(status = %r.status(), protected, "the ECS agent refused task protection"),
            Err(e) => tracing::warn!(error = %e, protected, "could not reach the ECS agent for task protection"),
        }
    }
}
