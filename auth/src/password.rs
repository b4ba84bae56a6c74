//! Argon2id hashing for passwords and client secrets, off the async runtime and bounded in
//! concurrency: each hash costs ~19 MiB and tens of milliseconds by design.

use std::sync::{Arc, OnceLock};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::error::{AuthError, AuthResult};

/// Hashes and verifies secrets with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane).
#[derive(Clone)]
pub struct SecretHasher {
    permits: Arc<Semaphore>,
}

impl SecretHasher {
    /// A hasher running at most `max_concurrent` hashes at once.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// The PHC string of `secret` with a fresh random salt.
    ///
    /// # Errors
    /// Only on an internal failure of the hasher.
    pub async fn hash(&self, secret: String) -> AuthResult<String> {
        self.run(move || {
            Argon2::default()
                .hash_password(secret.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| AuthError::Internal(format!("hashing failed: {error}")))
        })
        .await?
    }

    /// True when `secret` matches `phc`. With `phc = None` (no such account) it still spends the
    /// time of one verification, so response times do not tell which logins exist.
    ///
    /// # Errors
    /// Only on an internal failure of the hasher.
    pub async fn verify(&self, secret: String, phc: Option<String>) -> AuthResult<bool> {
        self.run(move || {
            let known = phc.is_some();
            let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
            let matches = Argon2::default()
                .verify_password(secret.as_bytes(), phc.as_str())
                .is_ok();
            known && matches
        })
        .await
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> AuthResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|error| AuthError::Internal(error.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| AuthError::Internal(error.to_string()))
    }
}

/// A hash of a random string, verified against when the account does not exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        Argon2::default()
            .hash_password(&random)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_only_its_secret_and_missing_accounts_never_match() {
        let hasher = SecretHasher::new(2);
        let phc = hasher
            .hash("kata-sandi-rahasia".into())
            .await
            .expect("hashed");
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("kata-sandi-rahasia".into(), Some(phc.clone()))
                .await
                .expect("verified")
        );
        assert!(
            !hasher
                .verify("salah".into(), Some(phc))
                .await
                .expect("verified")
        );
        assert!(
            !hasher
                .verify("anything".into(), None)
                .await
                .expect("verified")
        );
    }
}
