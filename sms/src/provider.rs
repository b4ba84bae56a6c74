//! The provider trait: one method, so the Twilio client, the fake (through the same client) and a
//! test double are interchangeable.

use std::future::Future;
use std::pin::Pin;

use crate::domain::{OutboundSms, SentSms};
use crate::error::SmsError;

/// A boxed future (the trait is used as `dyn SmsProvider`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that sends a text.
pub trait SmsProvider: Send + Sync + 'static {
    /// Sends `message`, retrying transient failures itself; answers the provider's message id.
    fn send<'a>(&'a self, message: &'a OutboundSms) -> BoxFuture<'a, Result<SentSms, SmsError>>;
}
