//! Per-kind dispatch settings (`dispatch.kind_settings`): seeded from configuration at the first
//! start, changed by admins, read by every wave.

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::domain::{AlertKind, KindSettings, OfferPolicy, ResponderRole, WaveSpec};

/// Inserts `settings` for `kind` unless the kind has a row already (config seeds, admins edit).
pub async fn seed_kind(
    pool: &PgPool,
    kind: AlertKind,
    settings: &KindSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.kind_settings
           (kind, required_certifications, requires_verified_practitioner, responders_needed, waves,
            policy, roles)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind) DO NOTHING",
    )
    .bind(kind)
    .bind(&settings.required_certifications)
    .bind(settings.requires_verified_practitioner)
    .bind(i32::try_from(settings.responders_needed).unwrap_or(1))
    .bind(sqlx::types::Json(&settings.waves))
    .bind(sqlx::types::Json(&settings.policy))
    .bind(&settings.roles)
    .execute(pool)
    .await?;
    Ok(())
}

/// Replaces the settings of `kind`.
pub async fn put_kind(
    pool: &PgPool,
    kind: AlertKind,
    settings: &KindSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.kind_settings
           (kind, required_certifications, requires_verified_practitioner, responders_needed, waves,
            policy, roles)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (kind) DO UPDATE SET required_certifications = EXCLUDED.required_certifications,
           requires_verified_practitioner = EXCLUDED.requires_verified_practitioner,
           responders_needed = EXCLUDED.responders_needed, waves = EXCLUDED.waves,
           policy = EXCLUDED.policy, roles = EXCLUDED.roles, updated_at = now()",
    )
    .bind(kind)
    .bind(&settings.required_certifications)
    .bind(settings.requires_verified_practitioner)
    .bind(i32::try_from(settings.responders_needed).unwrap_or(1))
    .bind(sqlx::types::Json(&settings.waves))
    .bind(sqlx::types::Json(&settings.policy))
    .bind(&settings.roles)
    .execute(pool)
    .await?;
    Ok(())
}

/// A `kind_settings` row.
#[derive(sqlx::FromRow)]
struct KindRow {
    kind: AlertKind,
    required_certifications: Vec<String>,
    requires_verified_practitioner: bool,
    responders_needed: i32,
    waves: Json<Vec<WaveSpec>>,
    policy: Json<OfferPolicy>,
    roles: Vec<ResponderRole>,
}

/// The columns of a [`KindRow`].
macro_rules! kind_columns {
    () => {
        "kind, required_certifications, requires_verified_practitioner, responders_needed, waves,
         policy, roles"
    };
}

fn kind_from_row(row: KindRow) -> (AlertKind, KindSettings) {
    (
        row.kind,
        KindSettings {
            required_certifications: row.required_certifications,
            requires_verified_practitioner: row.requires_verified_practitioner,
            responders_needed: u32::try_from(row.responders_needed).unwrap_or(1),
            waves: row.waves.0,
            policy: row.policy.0,
            roles: row.roles,
        },
    )
}

/// Every kind's settings.
pub async fn kinds(pool: &PgPool) -> Result<Vec<(AlertKind, KindSettings)>, sqlx::Error> {
    let rows: Vec<KindRow> = sqlx::query_as(concat!(
        "SELECT ",
        kind_columns!(),
        " FROM dispatch.kind_settings ORDER BY kind"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(kind_from_row).collect())
}

/// One kind's settings (inside a transaction).
pub async fn kind(
    conn: &mut PgConnection,
    kind: AlertKind,
) -> Result<Option<KindSettings>, sqlx::Error> {
    let row: Option<KindRow> = sqlx::query_as(concat!(
        "SELECT ",
        kind_columns!(),
        " FROM dispatch.kind_settings WHERE kind = $1"
    ))
    .bind(kind)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| kind_from_row(row).1))
}
