//! `kreki demo`: a local platform a newcomer can poke at. It keeps its signing key in the data
//! directory (so a restart signs nobody out), applies migrations, creates the demo accounts and the
//! demo courses (BLS and first aid) if they are missing, grants the demo volunteers the
//! certifications every kind needs, prints where to look and how to sign in, and serves every
//! service with the simulator ([`kreki_sim::simulate`]) running against it unless `--no-simulate`.

use std::path::Path;

use anyhow::Context;
use kreki_auth::AuthError;

use tokio_util::sync::CancellationToken;

use crate::app::{self, Services};
use crate::cli::{new_account, say, write_new_key};
use crate::config::Config;
use kreki_sim::simulate::{self, SimulateOptions};

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
/// `sizes`: the simulator's size and pace; `run_simulator` false (`--no-simulate`) only creates
/// its accounts.
///
/// # Errors
/// When the key cannot be kept, the database is unreachable, or the server cannot start.
pub async fn run(
    mut config: Config,
    data_dir: &Path,
    sizes: SimulateOptions,
    run_simulator: bool,
) -> anyhow::Result<()> {
    let simulate = run_simulator.then(|| sizes.clone());
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
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
    let fake_fcm = fake_push(&mut config, data_dir).await?;
    let fake_sms = fake_sms(&mut config).await?;
    let fake_bmkg = fake_bmkg(&mut config).await?;
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
    // The demo volunteers can take every kind the demo dispatches.
    for (phone, _, _, roles) in ACCOUNTS {
        if roles.contains(&"volunteer") {
            let phone = kreki_auth::domain::Phone::parse(phone).map_err(anyhow::Error::msg)?;
            if let Some(row) = kreki_auth::store::user_by_phone(&pool, phone.as_str()).await? {
                for code in DEMO_CERTIFICATIONS {
                    kreki_dispatch::eligibility::grant(&pool, row.id, code, None).await?;
                }
            }
        }
    }
    // Created even with `--no-simulate`, so `kreki simulate` can run against this demo later.
    simulate::seed_accounts(
        &pool,
        &auth.service,
        usize::from(sizes.volunteers),
        usize::from(sizes.citizens),
    )
    .await?;
    load_courses(&pool, &config).await?;
    kreki_cms::demo::load(&pool)
        .await
        .map_err(|error| anyhow::anyhow!(error.to_problem()))?;
    seed_regions(&pool).await?;
    pool.close().await;
    banner(
        &config,
        fake_fcm.as_ref(),
        fake_sms.as_ref(),
        simulate.as_ref(),
    );
    if let Some(fake) = &fake_bmkg {
        say(&format!(
            "  BMKG          a fake one runs in-process with an M6.1 earthquake south of Jakarta on the map; \
             more: POST {0}/control/earthquake {{\"lat\":-6.2,\"lng\":106.8,\"radius_km\":30,\"magnitude\":6.4}}, \
             {0}/control/update, {0}/control/cancel (see cap/src/fake/mod.rs)",
            fake.base_url()
        ));
    }
    let simulator = simulate.map(|options| {
        let base = local_base(config.server.listen);
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                match simulate::run(&base, simulate::PASSWORD, &options, stop).await {
                    Ok(stats) => say(&format!("simulation stopped: {}", stats.summary())),
                    Err(error) => {
                        tracing::error!(error = format!("{error:#}"), "the simulator stopped");
                    }
                }
            }
        });
        (stop, task)
    });
    // At Ctrl-C/SIGTERM the simulated volunteers go off duty first, while the server still
    // answers; then the server drains.
    let stop = async move {
        kreki_platform::shutdown::signal().await;
        if let Some((stop, task)) = simulator {
            stop.cancel();
            drop(tokio::time::timeout(std::time::Duration::from_secs(6), task).await);
        }
    };
    let served = app::serve_until(&config, &Services::all(), false, stop).await;
    drop(fake_fcm);
    drop(fake_sms);
    drop(fake_bmkg);
    served
}

/// Points `[cap]` at a fake BMKG started in-process (unless feeds are configured) with one
/// earthquake warning already published, so a coordinator sees a warning on the map at once; the
/// rule tells on-duty volunteers inside an Extreme earthquake warning.
async fn fake_bmkg(config: &mut Config) -> anyhow::Result<Option<kreki_cap::fake::FakeBmkg>> {
    if !config.cap.feeds.is_empty() {
        return Ok(None);
    }
    let fake = kreki_cap::fake::FakeBmkg::start("127.0.0.1:0".parse()?).await?;
    fake.earthquake(&kreki_cap::fake::Earthquake {
        lat: -6.45,
        lng: 106.84,
        radius_km: 30.0,
        magnitude: 6.1,
        severity: None,
    });
    config.cap.feeds.push(kreki_cap::config::FeedConfig {
        name: "bmkg-demo".to_owned(),
        url: fake.feed_url(),
    });
    config.cap.poll_interval_s = 5;
    config.cap.public_base_url = local_base(config.server.listen);
    if config.cap.rules.is_empty() {
        config.cap.rules.push(kreki_cap::config::RuleConfig {
            event: "gempa".to_owned(),
            min_severity: "Extreme".to_owned(),
            audience: "volunteers".to_owned(),
            message_id: "Peringatan BMKG: {headline}. Periksa keadaan sekitar dan siaga."
                .to_owned(),
            message_en: "BMKG warning: {headline}. Check your surroundings and stand by."
                .to_owned(),
        });
    }
    Ok(Some(fake))
}

/// The demo's regions: Jakarta's five cities as rough boxes (south-west corner lng, lat; north-east
/// corner lng, lat), each with the levels whose panics wait in triage. Only Jakarta Utara triages
/// new accounts, so the simulator's citizens elsewhere reach volunteers at once and a coordinator
/// can see triage at work in the north.
const DEMO_REGIONS: &[(&str, [f64; 4], &[kreki_auth::Trust])] = &[
    ("Jakarta Pusat", [106.79, -6.21, 106.88, -6.14], &[]),
    (
        "Jakarta Utara",
        [106.68, -6.14, 106.98, -6.08],
        &[kreki_auth::Trust::New],
    ),
    ("Jakarta Barat", [106.68, -6.21, 106.79, -6.14], &[]),
    ("Jakarta Selatan", [106.74, -6.37, 106.88, -6.21], &[]),
    ("Jakarta Timur", [106.88, -6.37, 106.98, -6.14], &[]),
];

/// Adds the demo regions that are missing.
async fn seed_regions(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    for (name, [west, south, east, north], triaged) in DEMO_REGIONS {
        let area = serde_json::json!({"type": "Polygon", "coordinates": [[
            [west, south], [east, south], [east, north], [west, north], [west, south]
        ]]});
        let triage = kreki_dispatch::domain::regions::TriagePolicy {
            default: triaged.to_vec(),
            kinds: std::collections::HashMap::new(),
        };
        kreki_dispatch::store::regions::insert_region_if_missing(pool, name, &area, &triage)
            .await?;
    }
    Ok(())
}

/// Certifications the demo volunteers hold: every one a demo kind requires by default.
const DEMO_CERTIFICATIONS: &[&str] = &["first_aid", "bls", "fire_basic"];

/// Where this process can reach its own server: the listen address, with a wildcard IP
/// replaced by loopback.
fn local_base(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
}

/// Points push at a fake FCM started in-process (unless a real service account is configured),
/// and keeps a VAPID key in the data directory so PWA subscriptions survive a restart.
async fn fake_push(
    config: &mut Config,
    data_dir: &Path,
) -> anyhow::Result<Option<kreki_realtime::push::FakeFcm>> {
    if config.push.web_push.vapid_private_key.is_none() {
        let key_file = data_dir.join("vapid-private-key.txt");
        let key = match std::fs::read_to_string(&key_file) {
            Ok(text) => secrecy::SecretString::from(text.trim().to_owned()),
            Err(_) => {
                let key = kreki_realtime::push::VapidKey::generate()?.private_key_base64();
                std::fs::write(&key_file, secrecy::ExposeSecret::expose_secret(&key))
                    .with_context(|| format!("writing {}", key_file.display()))?;
                key
            }
        };
        config.push.web_push.vapid_private_key = Some(key);
    }
    if config.push.fcm.service_account_file.is_some() {
        return Ok(None);
    }
    // The demo talks to a fake FCM started in-process, never to Google.
    let fake = kreki_realtime::push::FakeFcm::start("kreki-demo", "127.0.0.1:0".parse()?).await?;
    let account_file = data_dir.join("fake-fcm-service-account.json");
    std::fs::write(&account_file, fake.service_account_json())
        .with_context(|| format!("writing {}", account_file.display()))?;
    config.push.fcm.service_account_file = Some(account_file);
    config.push.fcm.base_url = fake.base_url();
    config.push.fcm.token_url = Some(fake.token_url());
    Ok(Some(fake))
}

/// Points `[sms]` at a fake Twilio started in-process (unless a real account is configured): phone
/// codes and offers by text then show up in its message log, and its status callbacks and replies
/// are signed webhooks to this demo.
async fn fake_sms(config: &mut Config) -> anyhow::Result<Option<kreki_sms::fake::FakeTwilio>> {
    if config.sms.provider != kreki_sms::ProviderKind::Off {
        return Ok(None);
    }
    let fake = kreki_sms::fake::FakeTwilio::start(
        kreki_sms::fake::FakeTwilioConfig::default(),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let base = local_base(config.server.listen);
    config.sms.provider = kreki_sms::ProviderKind::Fake;
    config.sms.base_url = fake.base_url();
    config.sms.account_sid = fake.config().account_sid.clone();
    config.sms.auth_token = secrecy::SecretString::from(fake.config().auth_token.clone());
    config.sms.from = fake.config().number.clone();
    config.sms.public_base_url = base;
    fake.set_inbound_url(config.sms.inbound_url());
    Ok(Some(fake))
}

/// Loads the demo courses (idempotent).
async fn load_courses(pool: &sqlx::PgPool, config: &Config) -> anyhow::Result<()> {
    let lms =
        kreki_lms::LmsService::new(pool.clone(), config.lms.clone(), kreki_lms::Ports::nobody());
    kreki_lms::demo::load(&lms, None)
        .await
        .map_err(|error| anyhow::anyhow!(error.to_problem()))?;
    Ok(())
}

fn banner(
    config: &Config,
    fake_fcm: Option<&kreki_realtime::push::FakeFcm>,
    fake_sms: Option<&kreki_sms::fake::FakeTwilio>,
    simulate: Option<&SimulateOptions>,
) {
    let base = format!("http://{}", config.server.listen);
    say("");
    say("KREKI demo is starting.");
    say(&format!("  Dashboard     {base}/dashboard/"));
    say(&format!("  Citizen app   {base}/app/"));
    say(&format!("  Volunteer app {base}/volunteer/"));
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
    if let Some(fake) = fake_fcm {
        say(&format!(
            "  FCM           a fake one runs in-process; pushes it received: {}/requests",
            fake.base_url()
        ));
    }
    if let Some(fake) = fake_sms {
        say(&format!(
            "  SMS           a fake Twilio runs in-process; texts it received: {}/messages",
            fake.base_url()
        ));
    }
    match simulate {
        Some(options) => {
            say(&format!(
                "  Simulator     {} simulated volunteers moving around central Jakarta, {} citizens pressing panic about {}/min (all drills); --no-simulate turns it off",
                options.volunteers, options.citizens, options.alerts_per_minute,
            ));
            say(&format!(
                "                simulated logins: volunteers {}.., citizens {}.. / {}",
                simulate::volunteer_phone(0),
                simulate::citizen_phone(0),
                simulate::PASSWORD,
            ));
        }
        None => say("  Simulator     off (--no-simulate)"),
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
