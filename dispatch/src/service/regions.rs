//! Regions and the coordinators who answer for them: admins add regions (GeoJSON areas) and assign
//! coordinators; every alert belongs to one (the region containing it, else the nearest); a
//! regional coordinator sees and acts on their regions' alerts, a national one (assigned to no
//! region) on all. The regions live in memory ([`RegionMap`]) so ingest locates an alert and
//! decides its triage without a query; this instance refreshes them when they change, and others
//! at their next catch-up poll (`poll_interval_ms`).

use std::sync::PoisonError;

use kreki_auth::{CurrentUser, Role};
use uuid::Uuid;

use super::DispatchService;
use crate::domain::RegionId;
use crate::domain::regions::{RegionArea, RegionMap, TriagePolicy, parse_area};
use crate::error::{DispatchError, DispatchResult};
use crate::notify::Audience;
use crate::store::regions::{self as store, RegionRow};
use crate::views::Region;

/// Longest region name, in characters.
pub const MAX_REGION_NAME_CHARS: usize = 200;

/// Where a coordinator may look and act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every alert (national coordinators and admins).
    National,
    /// Alerts of these regions (and alerts with no region).
    Regions(Vec<RegionId>),
}

impl Scope {
    /// The regions to filter by (`None`: no filter).
    pub fn regions(&self) -> Option<&[RegionId]> {
        match self {
            Scope::National => None,
            Scope::Regions(regions) => Some(regions),
        }
    }
}

impl DispatchService {
    /// Adds a region.
    ///
    /// # Errors
    /// 422 naming the field (`name`, `area...`, `triage`); 409 for a name taken.
    pub async fn create_region(
        &self,
        name: &str,
        area: &serde_json::Value,
        triage: Option<TriagePolicy>,
    ) -> DispatchResult<Region> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_REGION_NAME_CHARS {
            return Err(DispatchError::field("name", "must be 1 to 200 characters"));
        }
        let parsed = parse_area(area).map_err(DispatchError::Validation)?;
        let geojson = crate::domain::regions::area_json(&parsed);
        let row = store::insert_region(
            &self.pool,
            RegionId::new(),
            name,
            &geojson,
            &triage.unwrap_or_default(),
        )
        .await
        .map_err(|error| match constraint_of(&error) {
            Some("regions_name_key") => {
                DispatchError::Conflict("region-name-taken", "A region with this name exists.")
            }
            Some("regions_area_valid") => DispatchError::field(
                "area",
                "is not a valid polygon (its edges cross, or a hole lies outside it)",
            ),
            _ => error.into(),
        })?;
        self.refresh_regions().await?;
        Ok(region_view(row))
    }

    /// Every region, by name.
    ///
    /// # Errors
    /// Database failures.
    pub async fn regions(&self) -> DispatchResult<Vec<Region>> {
        Ok(store::regions(&self.pool)
            .await?
            .into_iter()
            .map(region_view)
            .collect())
    }

    /// Replaces a region's coordinators.
    ///
    /// # Errors
    /// 404 for an unknown region.
    pub async fn set_region_coordinators(
        &self,
        id: RegionId,
        users: &[Uuid],
    ) -> DispatchResult<Region> {
        let row = store::set_coordinators(&self.pool, id, users)
            .await?
            .ok_or(DispatchError::NotFound("region"))?;
        self.refresh_regions().await?;
        Ok(region_view(row))
    }

    /// Re-reads every region into the map ingest and the scope checks use.
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn refresh_regions(&self) -> DispatchResult<()> {
        let mut areas = Vec::new();
        for row in store::regions(&self.pool).await? {
            match parse_area(&row.area.0) {
                Ok(area) => areas.push(RegionArea {
                    id: row.id,
                    area,
                    triage: row.triage.0,
                    coordinators: row.coordinators,
                }),
                Err(errors) => {
                    tracing::error!(region_id = %row.id.0, ?errors, "a stored region's area does not parse; left out");
                }
            }
        }
        *self.regions.write().unwrap_or_else(PoisonError::into_inner) = RegionMap::new(areas);
        Ok(())
    }

    /// Runs `f` with the regions as last read.
    pub(crate) fn with_regions<T>(&self, f: impl FnOnce(&RegionMap) -> T) -> T {
        f(&self.regions.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The coordinators who hear of an alert or escalation in `region` over WebSocket: all of
    /// them but those assigned to other regions only ([`RegionMap::outsiders`]).
    pub(crate) fn coordinators_of(&self, region: Option<RegionId>) -> Audience {
        let outsiders = self.with_regions(|map| map.outsiders(region));
        if outsiders.is_empty() {
            Audience::Role(Role::Coordinator)
        } else {
            Audience::RoleExcept(Role::Coordinator, outsiders)
        }
    }

    /// Where `user` (a coordinator or admin) may look and act.
    pub fn scope_of(&self, user: &CurrentUser) -> Scope {
        if user.roles.grants(Role::Admin) {
            return Scope::National;
        }
        let regions = self.with_regions(|map| map.regions_of(user.id.0));
        if regions.is_empty() {
            Scope::National
        } else {
            Scope::Regions(regions)
        }
    }

    /// True when `user` is a coordinator who answers for alerts in `region`.
    pub fn covers(&self, user: &CurrentUser, region: Option<RegionId>) -> bool {
        user.roles.grants(Role::Coordinator)
            && (user.roles.grants(Role::Admin)
                || self.with_regions(|map| map.covers(user.id.0, region)))
    }

    /// Ok when `user` is a coordinator answering for alerts in `region`.
    ///
    /// # Errors
    /// 403 naming why.
    pub fn require_covers(
        &self,
        user: &CurrentUser,
        region: Option<RegionId>,
    ) -> DispatchResult<()> {
        user.require(Role::Coordinator)?;
        if self.covers(user, region) {
            Ok(())
        } else {
            Err(DispatchError::Forbidden(
                "this alert is in another region than yours",
            ))
        }
    }
}

impl DispatchService {
    /// Locks alert `id` in `conn`'s transaction for a coordinator's action on it.
    ///
    /// # Errors
    /// 404 unknown; 403 when `user` does not answer for its region.
    pub(crate) async fn lock_for_coordinator(
        &self,
        conn: &mut sqlx::PgConnection,
        user: &CurrentUser,
        id: crate::domain::AlertId,
    ) -> DispatchResult<crate::store::AlertRow> {
        let alert = crate::store::lock_alert(conn, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        self.require_covers(user, alert.region_id)?;
        Ok(alert)
    }
}

fn region_view(row: RegionRow) -> Region {
    Region {
        id: row.id,
        name: row.name,
        area: row.area.0,
        triage: row.triage.0,
        coordinator_ids: row.coordinators,
    }
}

/// The constraint a database error violated, if any.
pub(crate) fn constraint_of(error: &sqlx::Error) -> Option<&str> {
    error.as_database_error().and_then(|db| db.constraint())
}
