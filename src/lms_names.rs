//! lms -> auth: [`AccountNamesFromAuth`] answers the LMS's question "what is this account's
//! name?" from KREKI ID's service, so a trainer recording a certificate earned elsewhere needs only
//! the holder's account id (API.md's body), and the LMS never reads auth's tables.

use kreki_auth::{AuthError, UserId};
use uuid::Uuid;

/// KREKI ID as the LMS's [`kreki_lms::AccountNames`].
pub struct AccountNamesFromAuth(pub std::sync::Arc<kreki_auth::AuthService>);

impl kreki_lms::AccountNames for AccountNamesFromAuth {
    fn name_of(
        &self,
        user: Uuid,
    ) -> kreki_lms::ports::BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            match self.0.user(UserId(user)).await {
                Ok(row) => Ok(Some(row.name)),
                Err(AuthError::NotFound(_)) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}
