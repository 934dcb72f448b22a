//! Shared AWS SDK configuration. Credentials, region and endpoints come from the standard AWS
//! variables and files (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, the ECS task role,
//! ...), so the same binary talks to AWS or to an emulator on loopback.

use std::time::Duration;

use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::region::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The region when none is configured anywhere (the SDK would refuse to sign otherwise).
const FALLBACK_REGION: &str = "us-east-1";

/// Load the SDK configuration with `timeout` as the bound on one whole call, retries included:
/// an unreachable or hung service turns into an error in that time, never a hang.
pub async fn sdk_config(timeout: Duration) -> SdkConfig {
    let https = https_client();
    // The SDK's own region chain (environment, profile, EC2 metadata), with the metadata client
    // on our HTTPS client, then the fallback.
    let providers = ProviderConfig::default().with_http_client(https.clone());
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::builder().configure(&providers).build())
        .or_else(ImdsRegionProvider::builder().configure(&providers).build())
        .or_else(FALLBACK_REGION);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .operation_attempt_timeout(timeout)
        .operation_timeout(timeout)
        .build();
    defaults_on(https).region(region).timeout_config(timeouts).load().await
}

/// The SDK's defaults with our HTTPS client.
pub fn loader() -> ConfigLoader {
    defaults_on(https_client())
}

fn defaults_on(https: SharedHttpClient) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

/// Hyper on rustls with ring, the crypto sqlx already links (the SDK's default client would
/// build aws-lc, a second crypto library). Certificates come from the system's store, as with
/// the default client. Every part of the SDK that makes requests must get it, credential and
/// region providers included: without the default client there is no fallback.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// Whether requests go to an endpoint other than AWS's own (an emulator such as moto), which
/// wants path-style S3 addressing.
pub fn endpoint_overridden(config: &SdkConfig, service_env: &str) -> bool {
    config.endpoint_url().is_some() || std::env::var_os(service_env).is_some()
}

/// How an SDK call failed, in the terms callers act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service is unreachable, timed out, throttled us or failed on its side: retry later.
    Transient(String),
    /// The service answered with an error of ours (`code`, HTTP `status`).
    Refused { code: String, status: u16, message: String },
}

pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError as S;
    let detail = describe(err);
    match err {
        S::TimeoutError(_) | S::DispatchFailure(_) | S::ResponseError(_) => Failure::Transient(detail),
        S::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default().to_string();
            let throttled = code.contains("Throttl") || code == "SlowDown" || code == "RequestTimeout";
            if status >= 500 || status == 429 || throttled {
                Failure::Transient(detail)
            } else {
                Failure::Refused { code, status, message: detail }
            }
        }
        _ => Failure::Refused { code: String::new(), status: 0, message: detail },
    }
}

/// The whole error chain on one line (the SDK's own Display says only "service error").
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Without the SDK's default client, a provider built without ours panics on construction
    /// (the region chain's EC2 metadata client did). The region comes from AWS_REGION, which
    /// `make test` sets, so nothing here leaves loopback.
    #[tokio::test]
    async fn the_configuration_loads_on_our_https_client() {
        assert!(std::env::var_os("AWS_REGION").is_some(), "AWS_REGION is not set: run `make test`");
        let config = super::sdk_config(Duration::from_secs(5)).await;
        assert!(config.http_client().is_some());
        assert_eq!(config.region().map(|r| r.to_string()), std::env::var("AWS_REGION").ok());
    }
}
