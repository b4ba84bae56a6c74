//! NIK protection in the binary: which keys this process uses ([`keys`]), and the reseal batch
//! over every service's NIK columns ([`reseal_all`]) that `kreki pii reseal` and the start of
//! `kreki serve` run.
//!
//! Policy: without `[pii]` keys, NIKs are sealed with the built-in development keys (they protect
//! nothing; a warning says so at start). That is refused where NIKs are real: when
//! `pii.require_keys` is set (the production overlay of deploy/k8s sets it), or when the bridge
//! talks to SATUSEHAT production, the same rule `[sms]` follows for a real SMS provider. The
//! SATUSEHAT sandbox holds test data only, so it does not force keys.

use kreki_bridge_satusehat::config::Environment;
use kreki_platform::pii::{Pii, ResealCount};
use kreki_platform::shutdown::CancellationToken;
use sqlx::PgPool;

use crate::config::Config;

/// The keys of this process, by the policy above.
///
/// # Errors
/// When `[pii]` is invalid, or development keys would be used where NIKs are real.
pub fn keys(config: &Config) -> anyhow::Result<Pii> {
    let pii = Pii::from_config(&config.pii).map_err(anyhow::Error::msg)?;
    if pii.is_dev() {
        let satusehat = &config.satusehat;
        if satusehat.enabled && satusehat.environment == Environment::Production {
            anyhow::bail!(
                "pii.keys: SATUSEHAT production is configured, so NIKs are real: set pii.current_key, pii.keys.<id> and pii.search_key (create keys with `kreki pii generate-key`); the built-in keys are for development only"
            );
        }
        tracing::warn!(
            "pii: NIKs are sealed with the built-in DEVELOPMENT-ONLY keys, which protect nothing; configure [pii] keys before real people use this instance"
        );
    }
    Ok(pii)
}

/// Brings every NIK column of dispatch and the bridge under the current key: plaintext rows from
/// before encryption are sealed, rows under retired keys re-sealed. Returns the sum.
///
/// # Errors
/// Database failures.
pub async fn reseal_all(pool: &PgPool, pii: &Pii, batch: u32) -> anyhow::Result<ResealCount> {
    let mut total = ResealCount::default();
    for target in kreki_dispatch::NIK_COLUMNS
        .iter()
        .chain(kreki_bridge_satusehat::NIK_COLUMNS)
    {
        let count = kreki_platform::pii::reseal(pool, pii, *target, batch).await?;
        total.resealed += count.resealed;
        total.unreadable += count.unreadable;
        total.rehashed += count.rehashed;
    }
    Ok(total)
}

/// [`reseal_all`] once at start, in the background (stops with `shutdown`); failures are logged,
/// and `kreki pii reseal` can be run by hand.
pub async fn reseal_at_start(pool: PgPool, pii: Pii, batch: u32, shutdown: CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        result = reseal_all(&pool, &pii, batch) => match result {
            Ok(count) if count.unreadable > 0 => tracing::error!(
                unreadable = count.unreadable,
                "some stored NIKs cannot be read with the configured keys (see earlier errors)"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "resealing NIKs at start failed; run `kreki pii reseal`"),
        },
    }
}
