//! What the CAP service needs from the rest of KREKI, in its own terms; the binary wires each to
//! dispatch and the realtime hub (src/wiring). Nothing here knows alerts, sockets or tables of
//! other services.

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

use crate::views::{BroadcastMessage, Warning};

/// A boxed future (object-safe async in a trait).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is where: answered from dispatch, on the server; positions never leave it.
pub trait People: Send + Sync {
    /// On-duty volunteers with a fresh position inside `area` (GeoJSON MultiPolygon text).
    fn volunteers_inside(&self, area: &str) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>>;
    /// Citizens with a recent known position inside `area`.
    fn citizens_inside(&self, area: &str) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>>;
    /// A region's area (GeoJSON), `None` when there is no such region.
    fn region_area(&self, region: Uuid)
    -> BoxFuture<'_, anyhow::Result<Option<serde_json::Value>>>;
}

/// Where warnings and broadcasts go out.
pub trait Announcer: Send + Sync {
    /// A warning appeared or changed (to every coordinator's dashboard).
    fn warning_changed(&self, warning: &Warning);
    /// Warnings left the map (updated, cancelled).
    fn warnings_removed(&self, ids: &[Uuid]);
    /// A `Severe` or `Extreme` warning arrived: coordinators of the regions it covers must act.
    fn severe_warning(&self, warning: &Warning);
    /// A broadcast to these recipients (WebSocket, and push and SMS where the wiring has them).
    fn broadcast(&self, recipients: &[Uuid], message: &BroadcastMessage);
}

/// Nobody is anywhere (tests, processes without dispatch).
pub struct NobodyKnown;

impl People for NobodyKnown {
    fn volunteers_inside(&self, _area: &str) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn citizens_inside(&self, _area: &str) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn region_area(
        &self,
        _region: Uuid,
    ) -> BoxFuture<'_, anyhow::Result<Option<serde_json::Value>>> {
        Box::pin(async { Ok(None) })
    }
}

/// Announces nothing (processes without the hub: the dashboard polls `GET /v1/warnings`).
pub struct Silent;

impl Announcer for Silent {
    fn warning_changed(&self, _warning: &Warning) {}
    fn warnings_removed(&self, _ids: &[Uuid]) {}
    fn severe_warning(&self, _warning: &Warning) {}
    fn broadcast(&self, _recipients: &[Uuid], _message: &BroadcastMessage) {}
}
