//! The AED registry: admins add devices; custodians and admins change them (only admins verify);
//! anyone signed in lists the devices near a point with whether each is available now; and the
//! `aed` role asks for the device that makes the shortest walk volunteer -> AED -> alert among
//! those available at that instant ([`DispatchService::aed_route`]).

use chrono::{DateTime, Utc};
use kreki_auth::{CurrentUser, Role};
use sqlx::PgConnection;

use super::DispatchService;
use crate::domain::AedId;
use crate::domain::aeds::{AedChange, NewAed};
use crate::error::{DispatchError, DispatchResult};
use crate::geo::LatLng;
use crate::store::{self, AedViewer};
use crate::views::{Aed, AedRoute};

/// Most devices `GET /v1/aeds` answers.
pub const AEDS_NEAR_LIMIT: i64 = 200;

/// Most candidates the route read considers, nearest walk first. Within the route radius of one
/// alert a city has far fewer verified devices with hours than this; should all of these be
/// closed, the responder goes without one rather than waiting for a longer read.
pub const AED_ROUTE_CANDIDATES: i64 = 200;

/// The device that makes the shortest walk `volunteer -> AED -> alert` among the verified,
/// in-service AEDs within `radius_m` of the alert that are open at `at` (Asia/Jakarta hours), with
/// that walk in metres; `None` when there is none. One statement on `conn` (the caller's
/// transaction, or any connection) plus [`crate::domain::aeds::available_at`] on each candidate
/// in order.
///
/// # Errors
/// Database failures.
pub async fn aed_route(
    conn: &mut PgConnection,
    alert: LatLng,
    volunteer: LatLng,
    at: DateTime<Utc>,
    radius_m: f64,
) -> Result<Option<AedRoute>, sqlx::Error> {
    let candidates =
        store::aed_route_candidates(conn, alert, volunteer, radius_m, AED_ROUTE_CANDIDATES).await?;
    // `available_now` of a view made at `at` is `available_at(verified, out_of_service, hours, at)`.
    Ok(candidates
        .into_iter()
        .map(|candidate| AedRoute {
            aed: Aed::from_row(candidate.aed, at, false),
            distance_via_m: candidate.distance_via_m,
        })
        .find(|route| route.aed.available_now))
}

impl DispatchService {
    /// Adds an AED (the route checked the admin role); it starts unverified and in service.
    ///
    /// # Errors
    /// Database failures.
    pub async fn create_aed(&self, admin: &CurrentUser, aed: &NewAed) -> DispatchResult<Aed> {
        let row = store::insert_aed(
            &mut *self.pool.acquire().await?,
            AedId::new(),
            aed,
            admin.id.0,
        )
        .await?;
        Ok(Aed::from_row(row, Utc::now(), true))
    }

    /// The AEDs within `radius_m` of `at` that `user` may see, nearest first (at most
    /// [`AEDS_NEAR_LIMIT`]): every one for admins; the verified ones and those they look after for
    /// anyone else. Each says whether it is available now.
    ///
    /// # Errors
    /// Database failures.
    pub async fn aeds_near(
        &self,
        user: &CurrentUser,
        at: LatLng,
        radius_m: u32,
    ) -> DispatchResult<Vec<Aed>> {
        let admin = user.roles.grants(Role::Admin);
        let viewer = if admin {
            AedViewer::Admin
        } else {
            AedViewer::User(user.id.0)
        };
        let rows =
            store::aeds_near(&self.pool, at, f64::from(radius_m), AEDS_NEAR_LIMIT, viewer).await?;
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(|row| {
                let show = admin || row.custodian_ids.contains(&user.id.0);
                Aed::from_row(row, now, show)
            })
            .collect())
    }

    /// Changes an AED: its custodians and admins may change any field and take it out of service;
    /// only admins verify (recording who and when) or withdraw a verification. Moving a device or
    /// describing its place anew clears its verification unless the same change verifies it.
    ///
    /// # Errors
    /// 404 unknown; 403 for someone neither admin nor custodian, or a custodian touching
    /// `verified`.
    pub async fn change_aed(
        &self,
        user: &CurrentUser,
        id: AedId,
        change: AedChange,
    ) -> DispatchResult<Aed> {
        let mut tx = self.pool.begin().await?;
        let mut row = store::lock_aed(&mut tx, id)
            .await?
            .ok_or(DispatchError::NotFound("AED"))?;
        let admin = user.roles.grants(Role::Admin);
        if !admin && !row.custodian_ids.contains(&user.id.0) {
            return Err(DispatchError::Forbidden(
                "only the AED's custodians and admins may change it",
            ));
        }
        if change.verified.is_some() && !admin {
            return Err(DispatchError::Forbidden("only an admin may verify an AED"));
        }
        let now = Utc::now();
        if change.moves_the_device() {
            row.verified_by = None;
            row.verified_at = None;
        }
        match change.verified {
            Some(true) => {
                row.verified_by = Some(user.id.0);
                row.verified_at = Some(now);
            }
            Some(false) => {
                row.verified_by = None;
                row.verified_at = None;
            }
            None => {}
        }
        if let Some(at) = change.at {
            row.lat = at.lat();
            row.lng = at.lng();
        }
        if let Some(description) = change.description {
            row.description = description;
        }
        if let Some(hours) = change.hours {
            row.hours = sqlx::types::Json(hours.to_wire());
        }
        if let Some(out_of_service) = change.out_of_service {
            row.out_of_service = out_of_service;
        }
        let custodians_changed = change.custodians.is_some();
        if let Some(mut custodians) = change.custodians {
            custodians.sort_unstable();
            row.custodian_ids = custodians;
        }
        let saved = store::save_aed(&mut tx, &row, custodians_changed).await?;
        tx.commit().await?;
        let show = admin || saved.custodian_ids.contains(&user.id.0);
        Ok(Aed::from_row(saved, Utc::now(), show))
    }

    /// [`aed_route`] with this instance's pool and `dispatch.aed_radius_m`: the AED an `aed`
    /// responder at `volunteer` should fetch on the way to `alert` at `at`, if any.
    ///
    /// # Errors
    /// Database failures.
    pub async fn aed_route(
        &self,
        alert: LatLng,
        volunteer: LatLng,
        at: DateTime<Utc>,
    ) -> DispatchResult<Option<AedRoute>> {
        Ok(aed_route(
            &mut *self.pool.acquire().await?,
            alert,
            volunteer,
            at,
            f64::from(self.config.aed_radius_m),
        )
        .await?)
    }
}
