//! Fast setup of a load run: accounts and volunteer rows written straight into the database through
//! KREKI ID's and dispatch's own store functions, one shared Argon2 hash for every account, and
//! access tokens minted with the instance's signing key.
//!
//! Signing up 10,000 volunteers through the API would cost 10,000 Argon2 hashes (minutes on two
//! cores) and measure nothing the run is about.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, UserId};
use kreki_dispatch::domain::AlertKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::Instance;

/// Greater Jakarta, as in the matcher benchmark: latitude range in degrees.
pub const LAT_RANGE: std::ops::Range<f64> = -6.40..-6.05;
/// Greater Jakarta, as in the matcher benchmark: longitude range in degrees.
pub const LNG_RANGE: std::ops::Range<f64> = 106.65..107.05;

/// Rows written at once while seeding (each is a few single-row statements).
const SEED_CONCURRENCY: usize = 16;
/// How long minted access tokens stay valid: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(4 * 3600);

/// A seeded person: their id, their access token, and (volunteers) where they stand.
#[derive(Debug, Clone)]
pub struct Person {
    /// Account id.
    pub id: Uuid,
    /// EdDSA access token for the instance under test.
    pub token: String,
    /// Latitude, longitude in degrees (volunteers: their position; citizens: unused).
    pub at: (f64, f64),
}

/// Everyone a run needs.
#[derive(Debug)]
pub struct Seeded {
    /// On-duty volunteers holding the certifications the run's kind requires.
    pub volunteers: Vec<Person>,
    /// One citizen per panic, so no press attaches to an earlier alert of the same citizen.
    pub citizens: Vec<Person>,
}

/// `count` points uniform over greater Jakarta from `rng`.
pub fn points(rng: &mut StdRng, count: usize) -> Vec<(f64, f64)> {
    (0..count)
        .map(|_| (rng.random_range(LAT_RANGE), rng.random_range(LNG_RANGE)))
        .collect()
}

/// Seeds `volunteers` on-duty volunteers and `citizens` citizens (phones `+62891…`, numbered after
/// the accounts already in the database), and mints their tokens.
/// Volunteers get every certification `kind` requires; their positions come from `seed` and
/// reach the server later, as WebSocket `location` frames.
///
/// # Errors
/// Database failures, a missing signing key, or a phone number already taken.
pub async fn seed(
    instance: &Instance,
    kind: AlertKind,
    volunteers: usize,
    citizens: usize,
    seed: u64,
) -> anyhow::Result<Seeded> {
    let pool = &instance.pool;
    let keys = kreki_auth::load_keys(&instance.auth)?;
    anyhow::ensure!(
        keys.current().is_some(),
        "auth.signing_key_file: the load generator mints tokens with the instance's signing key; configure it (KREKI_AUTH__SIGNING_KEY_FILE)"
    );
    let issuer = Arc::new(Issuer::new(
        Arc::new(keys),
        instance.auth.issuer.clone(),
        TOKEN_TTL,
    ));
    let mut conn = pool.acquire().await?;
    let settings = kreki_dispatch::store::kind(&mut conn, kind)
        .await?
        .unwrap_or_else(|| instance.dispatch.kind_settings(kind));
    drop(conn);
    let certs = Arc::new(settings.required_certifications);
    // One hash for everyone: nobody signs in with it, but the column wants a real PHC string.
    let password = format!("loadtest-{}", Uuid::new_v4().simple());
    let hash = Arc::new(
        kreki_auth::password::SecretHasher::new(1)
            .hash(password)
            .await
            .map_err(|error| anyhow::anyhow!("hashing the shared password: {error}"))?,
    );
    // Numbered after the accounts already there, so a second run on the same database never
    // collides with the first.
    let (existing,): (i64,) = sqlx::query_as("SELECT count(*) FROM auth.users")
        .fetch_one(pool)
        .await?;
    let first = usize::try_from(existing).unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let positions = points(&mut rng, volunteers);

    let volunteer_roles = Arc::new(Roles::new([Role::Volunteer]));
    let volunteers = futures_util::stream::iter(positions.into_iter().enumerate())
        .map(|(index, at)| {
            let (pool, issuer, hash, roles, certs) = (
                pool.clone(),
                issuer.clone(),
                hash.clone(),
                volunteer_roles.clone(),
                certs.clone(),
            );
            async move {
                let name = format!("Relawan Uji {index}");
                let id = UserId::new();
                let phone = format!("+62891{:09}", first + index);
                kreki_auth::store::insert_user(&pool, id, &phone, None, &name, &hash, &roles)
                    .await
                    .with_context(|| {
                        format!("creating volunteer {phone} (use a scratch database)")
                    })?;
                kreki_dispatch::store::set_duty(&pool, id.0, &name, true).await?;
                for code in certs.iter() {
                    kreki_dispatch::eligibility::grant(&pool, id.0, code, None).await?;
                }
                let token = issuer.for_user(id, &roles, &name)?;
                anyhow::Ok(Person {
                    id: id.0,
                    token,
                    at,
                })
            }
        })
        .buffered(SEED_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;

    let citizen_roles = Arc::new(Roles::default());
    let first = first + volunteers.len();
    let citizens = futures_util::stream::iter(0..citizens)
        .map(|index| {
            let (pool, issuer, hash, roles) = (
                pool.clone(),
                issuer.clone(),
                hash.clone(),
                citizen_roles.clone(),
            );
            async move {
                let name = format!("Warga Uji {index}");
                let id = UserId::new();
                let phone = format!("+62891{:09}", first + index);
                kreki_auth::store::insert_user(&pool, id, &phone, None, &name, &hash, &roles)
                    .await
                    .with_context(|| {
                        format!("creating citizen {phone} (use a scratch database)")
                    })?;
                let token = issuer.for_user(id, &roles, &name)?;
                anyhow::Ok(Person {
                    id: id.0,
                    token,
                    at: (0.0, 0.0),
                })
            }
        })
        .buffered(SEED_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(Seeded {
        volunteers,
        citizens,
    })
}
