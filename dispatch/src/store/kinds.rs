//! Per-kind dispatch settings (`dispatch.kind_settings`): seeded from configuration at the first
//! start, changed by admins, read by every wave.

use sqlx::{PgConnection, PgPool};

use crate::domain::{AlertKind, KindSettings};

/// Inserts `settings` for `kind` unless the kind has a row already (config seeds, admins edit).
pub async fn seed_kind(
    pool: &PgPool,
    kind: AlertKind,
    settings: &KindSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.kind_settings
           (kind, required_certifications, requires_verified_practitioner, responders_needed, waves)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind) DO NOTHING",
    )
    .bind(kind)
    .bind(&settings.required_certifications)
    .bind(settings.requires_verified_practitioner)
    .bind(i32::try_from(settings.responders_needed).unwrap_or(1))
    .bind(sqlx::types::Json(&settings.waves))
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
           (kind, required_certifications, requires_verified_practitioner, responders_needed, waves)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind) DO UPDATE SET required_certifications = EXCLUDED.required_certifications,
           requires_verified_practitioner = EXCLUDED.requires_verified_practitioner,
           responders_needed = EXCLUDED.responders_needed, waves = EXCLUDED.waves, updated_at = now()",
    )
    .bind(kind)
    .bind(&settings.required_certifications)
    .bind(settings.requires_verified_practitioner)
    .bind(i32::try_from(settings.responders_needed).unwrap_or(1))
    .bind(sqlx::types::Json(&settings.waves))
    .execute(pool)
    .await?;
    Ok(())
}

type KindTuple = (
    AlertKind,
    Vec<String>,
    bool,
    i32,
    sqlx::types::Json<Vec<crate::domain::WaveSpec>>,
);

fn kind_from_tuple(row: KindTuple) -> (AlertKind, KindSettings) {
    let (kind, required, verified, needed, waves) = row;
    (
        kind,
        KindSettings {
            required_certifications: required,
            requires_verified_practitioner: verified,
            responders_needed: u32::try_from(needed).unwrap_or(1),
            waves: waves.0,
        },
    )
}

/// Every kind's settings.
pub async fn kinds(pool: &PgPool) -> Result<Vec<(AlertKind, KindSettings)>, sqlx::Error> {
    let rows: Vec<KindTuple> = sqlx::query_as(
        "SELECT kind, required_certifications, requires_verified_practitioner, responders_needed, waves
         FROM dispatch.kind_settings ORDER BY kind",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(kind_from_tuple).collect())
}

/// One kind's settings (inside a transaction).
pub async fn kind(
    conn: &mut PgConnection,
    kind: AlertKind,
) -> Result<Option<KindSettings>, sqlx::Error> {
    let row: Option<KindTuple> = sqlx::query_as(
        "SELECT kind, required_certifications, requires_verified_practitioner, responders_needed, waves
         FROM dispatch.kind_settings WHERE kind = $1",
    )
    .bind(kind)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| kind_from_tuple(row).1))
}
