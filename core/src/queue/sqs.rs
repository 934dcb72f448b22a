//! The production queue: an SQS queue (its dead-letter queue and `maxReceiveCount` are set on
//! the queue itself, by the CloudFormation template or by whoever made it).

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;

use super::{Depth, JobQueue, QueueError, Received, MAX_BATCH, MAX_DELAY};
use crate::aws::{classify, Failure};
use crate::Cause;

/// SQS's longest long poll.
const MAX_WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsQueue { client, url: url.into() }
    }

    /// A client from the shared SDK configuration.
    pub fn client(config: &aws_config::SdkConfig) -> Client {
        Client::new(config)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// SQS counts whole seconds; round up so a lease is never shorter than asked.
fn seconds(d: Duration) -> i32 {
    d.as_secs_f64().ceil().min(i32::MAX as f64) as i32
}

fn queue_error<E>(
    err: aws_sdk_sqs::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> QueueError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(&err) {
        Failure::Transient(detail) => QueueError::Unavailable(Cause::described(detail, err)),
        // An old receipt, or a message no longer in flight: the lease is gone.
        Failure::Refused { code, message, .. }
            if code.contains("ReceiptHandleIsInvalid")
                || code.contains("MessageNotInflight")
                || (code.contains("InvalidParameterValue") && message.to_lowercase().contains("receipt")) =>
        {
            QueueError::LeaseLost
        }
        Failure::Refused { message, .. } => QueueError::Other(Cause::described(message, err)),
    }
}

#[async_trait::async_trait]
impl JobQueue for SqsQueue {
    async fn send_after(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        let mut send = self.client.send_message().queue_url(&self.url).message_body(body);
        if !delay.is_zero() {
            send = send.delay_seconds(seconds(delay.min(MAX_DELAY)));
        }
        let out = send.send().await.map_err(queue_error)?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        let wait = wait.min(MAX_WAIT);
        // A long poll legitimately takes `wait`: give this call that much on top of the client's
        // usual bound, so a short ANB_AWS_TIMEOUT_SECS does not cut every long poll short.
        let usual = self
            .client
            .config()
            .timeout_config()
            .and_then(|t| t.operation_timeout())
            .unwrap_or(Duration::from_secs(30));
        let bound = aws_smithy_types::timeout::TimeoutConfig::builder()
            .operation_timeout(wait + usual)
            .operation_attempt_timeout(wait + usual)
            .build();
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(seconds(wait))
            .visibility_timeout(seconds(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(bound))
            .send()
            .await
            .map_err(queue_error)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attribute = |name: MessageSystemAttributeName| {
                    m.attributes.as_ref().and_then(|a| a.get(&name)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                };
                Received {
                    receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount) as u32,
                    sent_at_ms: attribute(MessageSystemAttributeName::SentTimestamp),
                    message_id: m.message_id.clone().unwrap_or_default(),
                    receipt: m.receipt_handle.clone().unwrap_or_default(),
                    body: m.body.clone().unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(visibility))
            .send()
            .await
            .map_err(queue_error)?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client.delete_message().queue_url(&self.url).receipt_handle(receipt).send().await.map_err(queue_error)?;
        Ok(())
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(queue_error)?;
        let count = |name: QueueAttributeName| {
            out.attributes.as_ref().and_then(|a| a.get(&name)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok(Depth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}
