//! `POST /v1/alerts/{id}/contacts/view`: a coordinator's call-back, recorded in the audit log.

use axum::extract::State;
use kreki_auth::CurrentUser;
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{DispatchState, TAG, problem_to_error};
use crate::domain::AlertId;
use crate::error::DispatchResult;
use crate::service::contacts::AlertContacts;

/// Body of `POST /v1/alerts/{id}/contacts/view`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactsViewRequest {
    /// Why the numbers are needed (3 to 500 characters), kept in the audit log.
    #[schema(example = "caller did not answer the app; calling back")]
    pub reason: String,
}

/// Shows the phone numbers of the alert's caller and responders to a coordinator of its region,
/// for a call-back. Every number shown is recorded in the audit log (`GET /v1/admin/audit`:
/// `alert.caller_phone.view`, `alert.responder_phone.view`, with the reason) and the view appears
/// on the timeline (`contacts_viewed`). Phones appear nowhere else.
#[utoipa::path(post, path = "/v1/alerts/{id}/contacts/view", tag = TAG,
    request_body = ContactsViewRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The caller's and the responders' phones", body = AlertContacts),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a coordinator of its region", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing, empty or too long `reason`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn view_contacts(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
    body: Result<Json<ContactsViewRequest>, Problem>,
) -> DispatchResult<Json<AlertContacts>> {
    let Json(body) = body.map_err(problem_to_error)?;
    Ok(Json(
        state.service.view_contacts(&user, id, &body.reason).await?,
    ))
}
