//! The `Idempotency-Key` of `POST /v1/alerts`: what makes a retried panic the same alert.

/// The `Idempotency-Key` header of `POST /v1/alerts`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The header name, as the problem field.
    pub const HEADER: &'static str = "Idempotency-Key";

    /// Checks the header value.
    ///
    /// # Errors
    /// Why the value is not usable.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() || value.len() > 255 {
            return Err("must be 1 to 255 characters");
        }
        if !value.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("must be visible ASCII characters (a UUID is a good key)");
        }
        Ok(Self(value.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
