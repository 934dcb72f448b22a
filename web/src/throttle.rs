//! Rate limits for what an anonymous or cheap account can repeat: logins and signups per client
//! address, votes per client address, and a growing delay per account after failed logins
//! (credential stuffing spread over many addresses still meets it). Answers are 429 with
//! `Retry-After`, in the API's `{"detail": ...}` shape.
//!
//! The client address is the socket's peer, or, behind `ANB_TRUSTED_PROXY_HOPS` proxies that
//! append to `X-Forwarded-For` (an ALB appends one), the address the outermost trusted proxy
//! saw. Entries a client wrote itself are never trusted. IPv6 clients are keyed by their /64, the
//! block one subscriber gets.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::AppState;

/// Failed logins an account may have before each further one waits.
pub const FREE_LOGIN_FAILURES: u32 = 5;
/// The longest wait between failed logins of one account.
pub const MAX_LOGIN_DELAY: Duration = Duration::from_secs(15 * 60);
/// Accounts whose failures are remembered at once (the least recently used go first).
const FAILURE_ENTRIES: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleOptions {
    pub trusted_proxy_hops: usize,
    pub login_attempts_per_minute: u32,
    pub signups_per_hour: u32,
    pub votes_per_minute: u32,
    /// Uploads one account may stream through the web at once: a slow or stalled upload holds
    /// a connection, a request slot and storage buffers, so one account cannot hold many.
    pub uploads_per_account: u32,
}

impl ThrottleOptions {
    pub fn from_settings(settings: &anb_core::Settings) -> Self {
        ThrottleOptions {
            trusted_proxy_hops: settings.trusted_proxy_hops,
            login_attempts_per_minute: settings.login_attempts_per_minute,
            signups_per_hour: settings.signups_per_hour,
            votes_per_minute: settings.votes_per_minute,
            uploads_per_account: settings.uploads_per_account,
        }
    }
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        Self::from_settings(&anb_core::Settings::default())
    }
}

#[derive(Debug, Clone, Copy)]
struct LoginFailures {
    count: u32,
    last: Instant,
}

pub struct Throttle {
    options: ThrottleOptions,
    logins: DefaultKeyedRateLimiter<IpAddr>,
    signups: DefaultKeyedRateLimiter<IpAddr>,
    votes: DefaultKeyedRateLimiter<IpAddr>,
    failures: moka::sync::Cache<String, LoginFailures>,
    uploads: Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, u32>>>,
}

/// An upload in progress for an account; the place is given back when dropped.
pub struct UploadSlot {
    uploads: Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, u32>>>,
    user: uuid::Uuid,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut uploads = self.uploads.lock().expect("uploads");
        if let Some(n) = uploads.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                uploads.remove(&self.user);
            }
        }
    }
}

fn per(n: u32, period: Duration) -> Quota {
    let n = NonZeroU32::new(n.max(1)).expect("at least 1");
    Quota::with_period(period / n.get()).expect("a positive period").allow_burst(n)
}

impl Throttle {
    pub fn new(options: ThrottleOptions) -> Self {
        Throttle {
            options,
            logins: RateLimiter::keyed(per(options.login_attempts_per_minute, Duration::from_secs(60))),
            signups: RateLimiter::keyed(per(options.signups_per_hour, Duration::from_secs(3600))),
            votes: RateLimiter::keyed(per(options.votes_per_minute, Duration::from_secs(60))),
            failures: moka::sync::Cache::builder()
                .max_capacity(FAILURE_ENTRIES)
                .time_to_idle(MAX_LOGIN_DELAY * 2)
                .build(),
            uploads: Arc::default(),
        }
    }

    /// A place for one more upload of `user` through the web, or 429 when they have
    /// `uploads_per_account` running.
    pub fn upload(&self, user: uuid::Uuid) -> Result<UploadSlot, ApiError> {
        let mut uploads = self.uploads.lock().expect("uploads");
        let running = uploads.entry(user).or_default();
        if *running >= self.options.uploads_per_account {
            return Err(ApiError::RateLimited {
                detail: format!(
                    "{} uploads of this account are already in progress; retry when one ends",
                    self.options.uploads_per_account
                ),
                retry_after_secs: 5,
            });
        }
        *running += 1;
        Ok(UploadSlot { uploads: self.uploads.clone(), user })
    }

    pub fn login(&self, client: &ClientAddr) -> Result<(), ApiError> {
        check(&self.logins, client, "Too many login attempts from this address; retry later")
    }

    pub fn signup(&self, client: &ClientAddr) -> Result<(), ApiError> {
        check(&self.signups, client, "Too many sign-ups from this address; retry later")
    }

    pub fn vote(&self, client: &ClientAddr) -> Result<(), ApiError> {
        check(&self.votes, client, "Too many votes from this address; retry later")
    }

    /// Refuse a login for `email` while its delay after earlier failures runs.
    pub fn account_ready(&self, email: &str) -> Result<(), ApiError> {
        let Some(failures) = self.failures.get(&account_key(email)) else { return Ok(()) };
        let wait = login_delay(failures.count).saturating_sub(failures.last.elapsed());
        if wait.is_zero() {
            return Ok(());
        }
        Err(ApiError::RateLimited {
            detail: "Too many failed logins for this account; retry later".into(),
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        })
    }

    pub fn login_failed(&self, email: &str) {
        let key = account_key(email);
        let count = self.failures.get(&key).map_or(0, |f| f.count).saturating_add(1);
        self.failures.insert(key, LoginFailures { count, last: Instant::now() });
    }

    pub fn login_succeeded(&self, email: &str) {
        self.failures.invalidate(&account_key(email));
    }

    /// Forget addresses that are back to a full burst (the sweep calls it), so the limiters'
    /// memory follows the active clients, not every address ever seen.
    pub fn forget_idle(&self) {
        for limiter in [&self.logins, &self.signups, &self.votes] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    pub fn trusted_proxy_hops(&self) -> usize {
        self.options.trusted_proxy_hops
    }
}

/// The wait after the last failure before an account with `failures` failures may try again:
/// none while fewer than [`FREE_LOGIN_FAILURES`], then 1 s, 2 s, 4 s, ... up to [`MAX_LOGIN_DELAY`].
pub fn login_delay(failures: u32) -> Duration {
    match failures.checked_sub(FREE_LOGIN_FAILURES) {
        None => Duration::ZERO,
        Some(over) => Duration::from_secs(1u64 << over.min(20)).min(MAX_LOGIN_DELAY),
    }
}

fn account_key(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check(limiter: &DefaultKeyedRateLimiter<IpAddr>, client: &ClientAddr, detail: &str) -> Result<(), ApiError> {
    limiter.check_key(&client.key()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited { detail: detail.into(), retry_after_secs: wait.as_secs_f64().ceil() as u64 }
    })
}

/// The client's address, as far as the trusted proxies say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The key a client is limited by: the address, or an IPv6 address's /64.
    pub fn key(&self) -> IpAddr {
        match self.0 {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("mapped")),
            v4 => v4,
        }
    }

    /// From the socket's peer and the `X-Forwarded-For` values, trusting `hops` proxies.
    pub fn resolve(peer: IpAddr, forwarded_for: &[&str], hops: usize) -> ClientAddr {
        if hops == 0 {
            return ClientAddr(peer);
        }
        let entries: Vec<&str> = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        // Each trusted proxy appended the address it saw: the client is `hops` from the end.
        let Some(index) = entries.len().checked_sub(hops) else { return ClientAddr(peer) };
        entries[index].parse().map(ClientAddr).unwrap_or(ClientAddr(peer))
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or_else(|| ApiError::Internal("no peer address on the request".into()))?;
        let forwarded: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        Ok(ClientAddr::resolve(peer, &forwarded, state.throttle.trusted_proxy_hops()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_as_many_entries_from_the_end_as_there_are_trusted_hops() {
        let peer = ip("10.0.0.9");
        assert_eq!(
            ClientAddr::resolve(peer, &["6.6.6.6"], 0).0,
            peer,
            "no proxies trusted: the header is the client's own"
        );
        assert_eq!(
            ClientAddr::resolve(peer, &["6.6.6.6, 203.0.113.7"], 1).0,
            ip("203.0.113.7"),
            "the ALB appended the last"
        );
        assert_eq!(
            ClientAddr::resolve(peer, &["6.6.6.6", "203.0.113.7, 10.1.1.1"], 2).0,
            ip("203.0.113.7"),
            "two headers, two hops"
        );
        assert_eq!(ClientAddr::resolve(peer, &[], 1).0, peer, "no header: the peer");
        assert_eq!(ClientAddr::resolve(peer, &["garbage"], 1).0, peer);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = ClientAddr(ip("2001:db8:1:2:aaaa::1")).key();
        let b = ClientAddr(ip("2001:db8:1:2:bbbb::2")).key();
        assert_eq!(a, b);
        assert_ne!(a, ClientAddr(ip("2001:db8:1:3::1")).key());
        assert_eq!(ClientAddr(ip("::ffff:192.0.2.1")).key(), ip("192.0.2.1"));
    }

    #[test]
    fn limits_answer_429_with_the_wait_and_failures_grow_the_delay() {
        let throttle = Throttle::new(ThrottleOptions { login_attempts_per_minute: 3, ..ThrottleOptions::default() });
        let client = ClientAddr(ip("192.0.2.1"));
        for _ in 0..3 {
            throttle.login(&client).unwrap();
        }
        let Err(ApiError::RateLimited { retry_after_secs, .. }) = throttle.login(&client) else { panic!("limited") };
        assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}");
        assert!(throttle.login(&ClientAddr(ip("192.0.2.2"))).is_ok(), "per address");

        let delays = (login_delay(4), login_delay(5), login_delay(6), login_delay(8), login_delay(40));
        assert_eq!(
            delays,
            (Duration::ZERO, Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(8), MAX_LOGIN_DELAY)
        );
        for _ in 0..FREE_LOGIN_FAILURES {
            throttle.account_ready("Ana@Example.com").unwrap();
            throttle.login_failed("ana@example.com");
        }
        assert!(matches!(throttle.account_ready(" ANA@example.com"), Err(ApiError::RateLimited { .. })));
        throttle.login_succeeded("ana@example.com");
        throttle.account_ready("ana@example.com").unwrap();
    }
}
