//! Signup, login and the bearer-token check on protected routes.
//!
//! Passwords are hashed with argon2id at a bounded cost ([`crate::passwords`]); signups and
//! logins are rate-limited per client address and logins per account ([`crate::throttle`]),
//! before any hashing. Tokens are HS256 JWTs with an
//! expiry; only HS256 with our key is accepted, so `alg: none`, another algorithm, another key,
//! a tampered payload or an expired token are all 401.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use anb_core::model::NewUser;
use anb_core::store::{Conflict, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Lines, MAX_EMAIL_CHARS, MAX_NAME_CHARS, MAX_PLACE_CHARS};
use crate::json::ApiJson;
use crate::passwords::{normalize, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use crate::responses::{BodyOver64KiB, Busy};
use crate::throttle::ClientAddr;
use crate::AppState;
use axum::routing::post;
use axum::Router;

/// Sign-up and login.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/auth/signup", post(signup)).route("/api/auth/login", post(login))
}

/// How long a token is valid.
pub const TOKEN_TTL_SECS: i64 = 3600;

/// Signs and checks tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// Users whose token was checked against the database lately. The API never deletes an
/// account, so a user found once is remembered for [`KNOWN_USER_TTL`] and the check then costs
/// no query: it was one of the two queries of every poll of `/api/videos`. An account removed
/// by hand in the database stops working within that time.
pub struct KnownUsers(moka::sync::Cache<Uuid, ()>);

pub const KNOWN_USER_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// About 100 bytes each with the cache's bookkeeping: at most some 10 MB.
const MAX_KNOWN_USERS: u64 = 100_000;

impl Default for KnownUsers {
    fn default() -> Self {
        KnownUsers(moka::sync::Cache::builder().max_capacity(MAX_KNOWN_USERS).time_to_live(KNOWN_USER_TTL).build())
    }
}

impl KnownUsers {
    pub fn contains(&self, user_id: Uuid) -> bool {
        self.0.contains_key(&user_id)
    }

    pub fn remember(&self, user_id: Uuid) {
        self.0.insert(user_id, ());
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iat: i64,
    exp: i64,
}

impl Tokens {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    pub fn issue(&self, user_id: Uuid) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims { sub: user_id, iat: now, exp: now + TOKEN_TTL_SECS };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Option<Uuid> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|t| t.claims.sub)
    }
}

/// The caller of a protected route, from `Authorization: Bearer <token>`.
pub struct AuthUser(pub Uuid);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;
        let user_id =
            state.tokens.verify(token.trim()).ok_or_else(|| ApiError::unauthorized("Invalid or expired token"))?;
        // A token of a user who no longer exists is no longer valid.
        if state.known_users.contains(user_id) {
            return Ok(AuthUser(user_id));
        }
        match state.backends.store.user(user_id).await? {
            Some(_) => {
                state.known_users.remember(user_id);
                Ok(AuthUser(user_id))
            }
            None => Err(ApiError::unauthorized("Invalid or expired token")),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignupRequest {
    #[schema(max_length = 254)]
    email: Option<String>,
    /// 8 to 128 characters (leading and trailing spaces are not part of it).
    #[schema(min_length = 8, max_length = 128)]
    password1: Option<String>,
    #[schema(max_length = 128)]
    password2: Option<String>,
    #[schema(max_length = 100)]
    first_name: Option<String>,
    #[schema(max_length = 100)]
    last_name: Option<String>,
    #[schema(max_length = 100)]
    city: Option<String>,
    #[schema(max_length = 100)]
    country: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    city: String,
    country: String,
}

/// A plausible address: one `@`, something before it, a dot in a domain without spaces.
fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
        && !email.chars().any(char::is_whitespace)
        && email.chars().count() <= MAX_EMAIL_CHARS
}

/// Create a player account.
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupRequest, responses(
    (status = 201, description = "Created", body = UserResponse),
    (status = 400, description = "E-mail taken or passwords differ", body = crate::error::Detail),
    BodyOver64KiB,
    (status = 422, description = "Invalid fields (each named, with its limit)", body = crate::error::ValidationDetail),
    (status = 429, description = "Too many sign-ups from this address (see Retry-After)", body = crate::error::Detail),
    Busy,
))]
pub async fn signup(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<(StatusCode, Json<UserResponse>)> {
    state.throttle.signup(&client)?;
    let mut problems = Vec::new();
    let mut required = |field: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => {
            problems.push((field.to_string(), "Field required".to_string()));
            String::new()
        }
    };
    let email = required("email", &req.email);
    let password1 = normalize(&required("password1", &req.password1));
    let password2 = normalize(&required("password2", &req.password2));
    let first_name = required("first_name", &req.first_name);
    let last_name = required("last_name", &req.last_name);
    let city = required("city", &req.city);
    let country = required("country", &req.country);
    for (field, value, max) in [
        ("email", &email, MAX_EMAIL_CHARS),
        ("first_name", &first_name, MAX_NAME_CHARS),
        ("last_name", &last_name, MAX_NAME_CHARS),
        ("city", &city, MAX_PLACE_CHARS),
        ("country", &country, MAX_PLACE_CHARS),
    ] {
        fields::check(field, value, max, Lines::Single, &mut problems);
    }
    if !email.is_empty() && !valid_email(&email) && email.chars().count() <= MAX_EMAIL_CHARS {
        problems.push(("email".into(), "value is not a valid email address".into()));
    }
    let password_chars = password1.chars().count();
    if !password1.is_empty() && password_chars < MIN_PASSWORD_CHARS {
        problems.push(("password1".into(), format!("String should have at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password_chars > MAX_PASSWORD_CHARS {
        problems.push(("password1".into(), format!("String should have at most {MAX_PASSWORD_CHARS} characters")));
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    // The original answers 400 (not 422) for this one.
    if password1 != password2 {
        return Err(ApiError::bad_request("Passwords do not match"));
    }
    if state.backends.store.user_by_email(&email).await?.is_some() {
        return Err(ApiError::bad_request("Email already registered"));
    }
    let password_hash = state.passwords.hash(password1).await?;
    let user = state
        .backends
        .store
        .create_user(NewUser { email, password_hash, first_name, last_name, city, country })
        .await
        .map_err(|e| match e {
            // Two signups raced; the database kept one.
            StoreError::Conflict(Conflict::DuplicateEmail) => ApiError::bad_request("Email already registered"),
            e => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            id: user.id,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            city: user.city,
            country: user.country,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    #[schema(max_length = 254)]
    email: String,
    #[schema(max_length = 128)]
    password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
}

/// Exchange e-mail and password for a bearer token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "A token", body = TokenResponse),
    (status = 401, description = "Wrong e-mail or password", body = crate::error::Detail),
    BodyOver64KiB,
    (status = 429, description = "Too many attempts from this address, or too many failures for this account (see Retry-After)", body = crate::error::Detail),
    Busy,
))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    state.throttle.login(&client)?;
    let password = normalize(&req.password);
    let email = req.email.trim();
    // Nothing that long was ever accepted at signup: wrong, without a lookup or a hash.
    if email.chars().count() > MAX_EMAIL_CHARS || password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(ApiError::unauthorized("Invalid email or password"));
    }
    state.throttle.account_ready(email)?;
    let user = state.backends.store.user_by_email(email).await?;
    // Verify against a dummy hash when the user is unknown, so timing does not tell.
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
    let ok = state.passwords.verify(password, hash).await?;
    match user {
        Some(user) if ok => {
            state.throttle.login_succeeded(email);
            Ok(Json(TokenResponse {
                access_token: state.tokens.issue(user.id),
                token_type: "Bearer",
                expires_in: TOKEN_TTL_SECS,
            }))
        }
        _ => {
            state.throttle.login_failed(email);
            Err(ApiError::unauthorized("Invalid email or password"))
        }
    }
}

/// The argon2id hash of a random password, in the same parameters as real ones.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$YW5iLWR1bW15LXNhbHQ$8kKjZ7+Qm3m3z2m0xv0n0Jm5lYtq7Jd3b1W5eJ8qf1Q";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in ["", "a", "a@", "@b.co", "a@b", "a@b.", "a b@c.co", "a@@b.co"] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_expire_and_foreign_or_unsigned_ones_fail() {
        let tokens = Tokens::new(b"secret");
        let id = Uuid::new_v4();
        assert_eq!(tokens.verify(&tokens.issue(id)), Some(id));
        assert_eq!(Tokens::new(b"other").verify(&tokens.issue(id)), None, "another key");
        let claims = Claims { sub: id, iat: 0, exp: 1 };
        let expired = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"secret")).unwrap();
        assert_eq!(tokens.verify(&expired), None, "expired");
        let unsigned = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"sub":"{id}","exp":9999999999}}"#))
        );
        assert_eq!(tokens.verify(&unsigned), None, "alg none");
        assert!(
            argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok(),
            "the dummy hash parses, so login timing is even"
        );
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }
}
