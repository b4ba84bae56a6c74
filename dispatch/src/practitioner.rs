//! Practitioner verification through a port: issue 5's SATUSEHAT bridge answers whether a NIK
//! belongs to a registered health worker. Until it is wired, [`NoRegistry`] answers `unavailable`
//! and nothing changes.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What the registry said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PractitionerStatus {
    /// Exactly one practitioner has this NIK.
    Verified,
    /// No practitioner has this NIK.
    NotFound,
    /// Several records match; a person must look.
    Ambiguous,
    /// The registry could not be asked now; try later.
    Unavailable,
}

/// The registry's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PractitionerCheck {
    /// The outcome.
    pub status: PractitionerStatus,
    /// The practitioner's IHS number (SATUSEHAT id) when verified.
    pub ihs_number: Option<String>,
}

/// Looks a NIK up in the national practitioner registry.
pub trait PractitionerRegistry: Send + Sync + 'static {
    /// Checks whether `nik` (16 digits, already validated) of `user` is a registered practitioner.
    /// Registry failures are answered as [`PractitionerStatus::Unavailable`], not as errors.
    fn verify(&self, user: Uuid, nik: &str) -> BoxFuture<'_, PractitionerCheck>;
}

/// No registry wired: every check is `unavailable`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRegistry;

impl PractitionerRegistry for NoRegistry {
    fn verify(&self, _user: Uuid, _nik: &str) -> BoxFuture<'_, PractitionerCheck> {
        Box::pin(std::future::ready(PractitionerCheck {
            status: PractitionerStatus::Unavailable,
            ihs_number: None,
        }))
    }
}
