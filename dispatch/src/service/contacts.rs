//! Call-back: a coordinator of the alert's region asks, with a reason, for the phone numbers of
//! its caller and its responders. Nothing else shows them (alerts and timelines carry at most the
//! last four digits); each number shown is one line of KREKI ID's audit log (who, whose, when,
//! why, which alert) and the view is a `contacts_viewed` entry on the timeline, all in one
//! transaction, so a number is never shown without its record.

use kreki_auth::audit::Action;
use kreki_auth::contact_view::{PhoneView, phones_for_call_back};
use kreki_auth::{CurrentUser, UserId};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::DispatchService;
use super::effects::Effect;
use crate::domain::{AlertId, AssignmentStatus, ResponderRole};
use crate::error::{DispatchError, DispatchResult};
use crate::store;
use crate::timeline::Event;

/// Longest reason kept, characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The caller of an alert, for a call-back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallerContact {
    /// Their account; null for an emergency phoned in to a coordinator.
    pub id: Option<Uuid>,
    /// Their name; null for a phoned-in caller.
    pub name: Option<String>,
    /// Their phone (E.164); null when none is known.
    pub phone: Option<String>,
}

/// A responder of an alert, for a call-back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponderContact {
    /// The volunteer's account.
    pub id: Uuid,
    /// Their name.
    pub name: String,
    /// Their phone (E.164); null if their account is gone.
    pub phone: Option<String>,
    /// Their role on this alert (`cpr`, `aed`, `lead`), if any.
    pub role: Option<ResponderRole>,
    /// Their assignment's status.
    pub status: AssignmentStatus,
}

/// Answer of `POST /v1/alerts/{id}/contacts/view`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertContacts {
    /// Who raised the alert.
    pub caller: CallerContact,
    /// Who responds (withdrawn responders are left out).
    pub responders: Vec<ResponderContact>,
}

/// A phone number with all but its last four digits hidden (`*******7890`), for timelines.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("*******{tail}")
}

impl DispatchService {
    /// Shows the phones of alert `id`'s caller and responders to `user`, a coordinator of its
    /// region, for `reason`; records each number shown in the audit log and the view on the
    /// timeline.
    ///
    /// # Errors
    /// 422 `reason` empty or too long; 404 unknown alert; 403 not a coordinator or another
    /// region's alert.
    pub async fn view_contacts(
        &self,
        user: &CurrentUser,
        id: AlertId,
        reason: &str,
    ) -> DispatchResult<AlertContacts> {
        let reason = reason.trim();
        if reason.chars().count() < 3 || reason.chars().count() > MAX_REASON_CHARS {
            return Err(DispatchError::field(
                "reason",
                format!("must be 3 to {MAX_REASON_CHARS} characters"),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let (alert, assignments) = store::alert_view(&mut tx, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?
            .into_parts();
        self.require_covers(user, alert.region_id)?;
        let phoned_in = store::contacts::phoned_in_caller(&mut tx, id).await?;
        let responders: Vec<_> = assignments
            .into_iter()
            .filter(|assignment| assignment.status != AssignmentStatus::Withdrawn)
            .collect();
        let caller_account = match &phoned_in {
            Some(_) => None,
            None => Some(UserId(alert.citizen_id)),
        };
        let mut views = vec![PhoneView {
            subject: caller_account,
            action: Action::CallerPhoneView,
        }];
        views.extend(responders.iter().map(|assignment| PhoneView {
            subject: Some(UserId(assignment.volunteer_id)),
            action: Action::ResponderPhoneView,
        }));
        let audited = format!("alert {id}: {reason}");
        let phones = phones_for_call_back(&mut tx, user.id, &audited, &views).await?;
        store::insert_event(
            &mut tx,
            id,
            Some(user.id.0),
            &Event::ContactsViewed {
                by: super::triage::person(user),
                reason: reason.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        self.apply(vec![Effect::AlertChanged(id)]).await;
        let caller = match phoned_in {
            Some(phone) => CallerContact {
                id: None,
                name: None,
                phone,
            },
            None => CallerContact {
                id: Some(alert.citizen_id),
                name: Some(alert.citizen_name),
                phone: phones.get(&alert.citizen_id).cloned(),
            },
        };
        let responders = responders
            .into_iter()
            .map(|assignment| ResponderContact {
                id: assignment.volunteer_id,
                phone: phones.get(&assignment.volunteer_id).cloned(),
                name: assignment.volunteer_name,
                role: assignment.role,
                status: assignment.status,
            })
            .collect();
        Ok(AlertContacts { caller, responders })
    }
}

#[cfg(test)]
mod tests {
    use super::mask_phone;

    #[test]
    fn masks_keep_the_last_four_digits() {
        assert_eq!(mask_phone("0812-3456-7890"), "*******7890");
        assert_eq!(mask_phone("+6281234567890"), "*******7890");
        assert_eq!(mask_phone("12"), "*******12");
        assert_eq!(mask_phone(""), "*******");
    }
}
