//! Phone numbers shown for a call-back (a coordinator calling an alert's caller or its responders
//! back): the numbers are read and every view is written to the audit log in the caller's
//! transaction, so no number leaves without its record (UU PDP: who, what, when, why).

use std::collections::HashMap;

use uuid::Uuid;

use crate::audit::{self, Action};
use crate::domain::UserId;

/// One person whose number is about to be shown: their account (none for a caller who phoned
/// in without one) and which kind of view it is.
#[derive(Debug, Clone, Copy)]
pub struct PhoneView {
    /// Whose number; `None` when the number was typed in by a coordinator and names no account.
    pub subject: Option<UserId>,
    /// [`Action::CallerPhoneView`] or [`Action::ResponderPhoneView`].
    pub action: Action,
}

/// The phone numbers (E.164) of the accounts among `views`, by account id, after appending one
/// audit line per view by `actor` with `reason`. Run it inside the transaction that records the
/// rest of the access, so the record and the access commit together.
///
/// # Errors
/// The database error (nothing is shown then).
pub async fn phones_for_call_back(
    conn: &mut sqlx::PgConnection,
    actor: UserId,
    reason: &str,
    views: &[PhoneView],
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    for view in views {
        audit::record(&mut *conn, Some(actor), view.action, view.subject, reason).await?;
    }
    let ids: Vec<Uuid> = views
        .iter()
        .filter_map(|view| view.subject.map(|id| id.0))
        .collect();
    Ok(crate::store::phones_of(&mut *conn, &ids)
        .await?
        .into_iter()
        .collect())
}
