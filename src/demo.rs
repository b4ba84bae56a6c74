//! `kreki demo`: a local platform a newcomer can poke at. It keeps its signing key in the data
//! directory (so a restart signs nobody out), applies migrations, creates the demo accounts and the
//! demo courses (BLS and first aid) if they are missing, prints where to look and how to sign in,
//! and serves every service.

use std::path::Path;

use kreki_auth::AuthError;

use crate::app::{self, Services};
use crate::cli::{new_account, say, write_new_key};
use crate::config::Config;

/// A demo account: phone, password, name, roles.
type DemoAccount = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The demo accounts. Passwords are public: this is a demo, never a deployment.
pub const ACCOUNTS: &[DemoAccount] = &[
    ("081100000001", "demo-admin-2026", "Admin Demo", &["admin"]),
    (
        "081100000002",
        "demo-koordinator",
        "Koordinator Demo",
        &["coordinator"],
    ),
    ("081100000003", "demo-pelatih", "Pelatih Demo", &["trainer"]),
    (
        "081200000001",
        "demo-relawan",
        "Relawan Satu",
        &["volunteer"],
    ),
    (
        "081200000002",
        "demo-relawan",
        "Relawan Dua",
        &["volunteer"],
    ),
    (
        "081200000003",
        "demo-relawan",
        "Relawan Tiga",
        &["volunteer"],
    ),
    ("081300000001", "demo-warga", "Warga Demo", &[]),
];

/// Runs the demo.
///
/// # Errors
/// When the key cannot be kept, the database is unreachable, or the server cannot start.
pub async fn run(mut config: Config, data_dir: &Path) -> anyhow::Result<()> {
    if config.auth.signing_key_file.is_none() && config.auth.signing_key_pem.is_none() {
        let key_file = data_dir.join("signing-key.pem");
        if !key_file.exists() {
            write_new_key(&key_file)?;
        }
        config.auth.signing_key_file = Some(key_file);
    }
    if !config.satusehat.enabled {
        // The demo talks to the fake SATUSEHAT started in-process, never to the real one.
        config.satusehat.enabled = true;
        config.satusehat.environment = kreki_bridge_satusehat::config::Environment::Fake;
    }
    let pool = config.database.pool().map_err(anyhow::Error::msg)?;
    app::migrate(&pool).await?;
    let auth = kreki_auth::build(pool.clone(), config.auth.clone())?;
    for (phone, password, name, roles) in ACCOUNTS {
        let roles: Vec<String> = roles.iter().map(|role| (*role).to_owned()).collect();
        match auth
            .service
            .register(new_account(phone, password, name, None, &roles)?)
            .await
        {
            Ok(_) | Err(AuthError::PhoneTaken) => {}
            Err(error) => return Err(anyhow::anyhow!(error.to_problem())),
        }
    }
    load_courses(&pool, &config).await?;
    pool.close().await;
    banner(&config);
    app::serve(&config, &Services::all(), false).await
}

/// Loads the demo courses (idempotent).
async fn load_courses(pool: &sqlx::PgPool, config: &Config) -> anyhow::Result<()> {
    let nobody = std::sync::Arc::new(kreki_lms::ports::NobodyListens);
    let lms = kreki_lms::LmsService::new(pool.clone(), config.lms.clone(), nobody.clone(), nobody);
    kreki_lms::demo::load(&lms, None)
        .await
        .map_err(|error| anyhow::anyhow!(error.to_problem()))?;
    Ok(())
}

fn banner(config: &Config) {
    let base = format!("http://{}", config.server.listen);
    say("");
    say("KREKI demo is starting.");
    say(&format!("  API docs      {base}/docs"));
    say(&format!("  OpenAPI       {base}/openapi.json"));
    say(&format!("  Readiness     {base}/readyz"));
    say(&format!("  Metrics       {base}/metrics"));
    say("  Demo accounts (login / password):");
    for (phone, password, name, roles) in ACCOUNTS {
        let roles = if roles.is_empty() {
            "citizen".to_owned()
        } else {
            roles.join(",")
        };
        say(&format!("    {phone:<14} {password:<18} {name} ({roles})"));
    }
    if config.satusehat.environment == kreki_bridge_satusehat::config::Environment::Fake {
        say(&format!(
            "  SATUSEHAT     a fake one runs in-process; practitioner NIKs: {} (verified), {} (ambiguous), {} (not found)",
            kreki_bridge_satusehat::fake::SEED_NIK_ONE,
            kreki_bridge_satusehat::fake::SEED_NIK_SEVERAL,
            kreki_bridge_satusehat::fake::SEED_NIK_NONE,
        ));
    }
    say(&format!("  FHIR R4       {base}/fhir/r4/metadata"));
    say(&format!(
        "  Try: curl -s -X POST {base}/v1/auth/login -H 'content-type: application/json' -d '{{\"login\":\"081300000001\",\"password\":\"demo-warga\"}}'"
    ));
    say(
        "  Courses: \"Bantuan Hidup Dasar (BLS)\" and \"Pertolongan Pertama\" at GET /v1/lms/courses",
    );
    say("  Stop with Ctrl-C.");
    say("");
}
