//! The `kreki` command line. Each subcommand loads and validates the configuration first, so a
//! wrong value stops it before it touches anything.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kreki_auth::domain::{Email, NewPassword, PersonName, Phone, Role, Roles};
use kreki_auth::service::NewAccount;

use crate::app::{self, Services};
use crate::config::Config;

/// KREKI: open-source emergency geo-dispatch for Indonesia.
///
/// A citizen presses panic; the nearest on-duty, certified volunteers get an offer within
/// milliseconds; a coordinator follows it live; hospitals see it as FHIR.
///
/// Configuration comes from `--config FILE` (TOML) and `KREKI_*` environment variables, nested keys
/// joined with `__` (for example `KREKI_SERVER__LISTEN=0.0.0.0:8080`,
/// `KREKI_DATABASE__URL=postgres://…`). See README.md for every key.
#[derive(Debug, Parser)]
#[command(
    name = "kreki",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// TOML configuration file (values from `KREKI_*` variables override it).
    #[arg(long, short, global = true, env = "KREKI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and background workers until SIGTERM or Ctrl-C.
    ///
    /// Runs every service by default, which is what a small city needs. `--services` runs a
    /// subset, so each role can be scaled on its own from one image.
    Serve {
        /// Services to run, comma-separated: `all`, or any of `auth`, `realtime`, `dispatch`, `lms`,
        /// `bridge`, `guidance`.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "all",
            value_name = "LIST"
        )]
        services: Vec<String>,
        /// Apply pending database migrations before serving.
        #[arg(long)]
        migrate: bool,
    },
    /// Apply pending database migrations (every service's schema), then exit.
    Migrate,
    /// Manage accounts directly in the database (no running server needed).
    User {
        /// What to do with accounts.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the Ed25519 keys that sign access tokens.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Start a local platform with demo accounts: keeps a signing key under `--data-dir`, applies
    /// migrations, creates demo users (if missing), prints where to look, and serves.
    Demo {
        /// Where the demo keeps its signing key between runs.
        #[arg(long, default_value = ".kreki", value_name = "DIR")]
        data_dir: PathBuf,
        /// Do not run the simulator (simulated citizens and volunteers) beside the platform; its
        /// accounts are still created, for a `kreki simulate` run later.
        #[arg(long)]
        no_simulate: bool,
        /// The simulator's size and pace.
        #[command(flatten)]
        simulate: kreki_sim::simulate::SimulateOptions,
    },
    /// Simulated citizens and moving volunteers against a running platform, through its public
    /// API, until Ctrl-C: volunteers go on duty, move, accept offers and report their way to the
    /// scene; citizens press panic (alerts flagged `drill`). Uses the simulated accounts
    /// `kreki demo` creates (volunteers 081299000001.., citizens 081399000001..).
    Simulate {
        /// The platform's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
        url: String,
        /// Password of the simulated accounts.
        #[arg(long, env = "KREKI_SIMULATE_PASSWORD", default_value = kreki_sim::simulate::PASSWORD)]
        password: String,
        /// The simulation's size and pace.
        #[command(flatten)]
        options: kreki_sim::simulate::SimulateOptions,
    },
    /// Manage volunteers' dispatch data directly in the database.
    Volunteer {
        /// What to do with volunteers.
        #[command(subcommand)]
        command: VolunteerCommand,
    },
    /// MQTT devices: the broker's credentials from the device registry.
    Mqtt {
        /// What to do.
        #[command(subcommand)]
        command: MqttCommand,
    },
    /// Load-test the dispatch hot path against a running `kreki serve` with this configuration
    /// (seeds its database directly; use a scratch one: `scripts/bench-dispatch.sh`).
    Loadtest {
        /// Which run.
        #[command(subcommand)]
        command: kreki_sim::loadtest::LoadtestCommand,
    },
    /// First-aid guidance pages.
    Guidance {
        /// What to do.
        #[command(subcommand)]
        command: GuidanceCommand,
    },
    /// NIK protection: keys, and re-encrypting stored NIKs.
    Pii {
        /// What to do.
        #[command(subcommand)]
        command: PiiCommand,
    },
    /// Run a fake BMKG (CAP 1.2 earthquake and weather warnings, controllable over HTTP at
    /// `/control/...`) until Ctrl-C: for the browser tests and trying `[cap] feeds` locally.
    FakeBmkg {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
    },
    /// Check the configuration and print it (secrets redacted).
    Config,
    /// Print the OpenAPI description `/openapi.json` serves (JSON), without a database or a
    /// signing key: what `scripts/validate-openapi.sh` checks and client generators read.
    Openapi,
}

/// `kreki pii …`
#[derive(Debug, Subcommand)]
pub enum PiiCommand {
    /// Print a new random key (base64 of 32 bytes) for `pii.keys.<id>`, `pii.search_key` or
    /// `pii.search_wrap_keys`.
    GenerateKey,
    /// Seal every stored NIK under `pii.current_key`: plaintext rows from before encryption and
    /// rows under older keys, in batches of `pii.reseal_batch`. Run it after making a new key
    /// current; remove the old key from `pii.keys` once it reports nothing left. Safe to run while
    /// `kreki serve` runs (and `serve` runs it at start).
    Reseal,
}

/// `kreki guidance …`
#[derive(Debug, Subcommand)]
pub enum GuidanceCommand {
    /// Store the built-in first-aid pages (CPR, choking, bleeding, burns, seizures, while
    /// waiting; Bahasa Indonesia and English) that are missing. Pages admins or trainers wrote
    /// are left as they are.
    LoadBuiltin,
}

/// `kreki volunteer …`
#[derive(Debug, Subcommand)]
pub enum VolunteerCommand {
    /// Grant (or renew) a certification used for dispatch eligibility, until the LMS issues
    /// certificates: `kreki volunteer grant-cert --user ID --cert bls [--expires 2027-06-30T00:00:00Z]`.
    /// A running dispatch picks it up at the volunteer's next duty change or at restart.
    GrantCert {
        /// The volunteer's account id.
        #[arg(long)]
        user: uuid::Uuid,
        /// Certification code (`first_aid`, `bls`, `fire_basic`, ...).
        #[arg(long)]
        cert: String,
        /// When it stops counting (RFC 3339, UTC); never when absent.
        #[arg(long)]
        expires: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// `kreki mqtt …`
#[derive(Debug, Subcommand)]
pub enum MqttCommand {
    /// Write Mosquitto's password and ACL files from the device registry (live devices plus the
    /// `[mqtt]` service account), replacing them atomically. Then reload the broker (SIGHUP);
    /// `deploy/mosquitto/sync-credentials.sh` does both.
    SyncCredentials {
        /// Mosquitto's `password_file`.
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/mosquitto/kreki/passwd"
        )]
        password_file: PathBuf,
        /// Mosquitto's `acl_file`.
        #[arg(long, value_name = "FILE", default_value = "/etc/mosquitto/kreki/acl")]
        acl_file: PathBuf,
    },
}

/// `kreki user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account, for example the first admin:
    /// `kreki user create --phone 0811… --password … --name "Admin" --role admin`.
    Create {
        /// Phone number (`0812…` or `+62812…`).
        #[arg(long)]
        phone: String,
        /// Password, 8 to 128 characters.
        #[arg(long)]
        password: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Optional e-mail (a second login).
        #[arg(long)]
        email: Option<String>,
        /// Roles beyond `citizen`; repeat for several (`--role volunteer --role coordinator`).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
}

/// `kreki keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new Ed25519 private key (PKCS#8 PEM) to `--out`, for `auth.signing_key_file`.
    Generate {
        /// File to create; refuses to overwrite.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Two TLS crypto providers end up linked (see docs/DESIGN.md, "Stack choices"); choose one
    // before any TLS is made.
    drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("kreki: invalid configuration\n{message}");
            return ExitCode::from(2);
        }
    };
    // `kreki openapi` prints a document on stdout, where logs would go: it runs without them.
    if matches!(cli.command, Command::Openapi) {
        return match openapi_json(config) {
            Ok(json) => {
                say(&json);
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("kreki: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Kept until exit: dropping it sends the spans still queued (after the runtime has stopped).
    let _telemetry = match kreki_platform::telemetry::init(
        config.log.format,
        &config.log.filter,
        &config.telemetry,
    ) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("kreki: invalid configuration\n{error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kreki: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "kreki failed");
            eprintln!("kreki: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { services, migrate } => {
            let services =
                Services::parse(services.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
            app::serve(&config, &services, migrate).await
        }
        Command::Migrate => {
            let pool = config.database.pool().map_err(anyhow::Error::msg)?;
            app::migrate(&pool).await?;
            say(&format!(
                "migrations applied ({} known)",
                app::MIGRATOR.iter().count()
            ));
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    phone,
                    password,
                    name,
                    email,
                    roles,
                },
        } => {
            let account = new_account(&phone, &password, &name, email.as_deref(), &roles)?;
            let pool = config.database.pool().map_err(anyhow::Error::msg)?;
            let auth = kreki_auth::build(pool, config.auth.clone())?;
            let row = auth
                .service
                .register(account)
                .await
                .map_err(|error| anyhow::anyhow!(error.to_problem()))?;
            say(&format!(
                "created account {} ({}) with roles {}",
                row.id,
                row.phone,
                row.roles.join(",")
            ));
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Generate { out },
        } => {
            write_new_key(&out)?;
            say(&format!("wrote a new signing key to {}", out.display()));
            Ok(())
        }
        Command::Mqtt {
            command:
                MqttCommand::SyncCredentials {
                    password_file,
                    acl_file,
                },
        } => {
            let password = secrecy::ExposeSecret::expose_secret(&config.mqtt.password);
            anyhow::ensure!(
                !password.is_empty(),
                "mqtt.password: set the consumer's password (KREKI_MQTT__PASSWORD) so its account is written too"
            );
            let pool = config.database.pool().map_err(anyhow::Error::msg)?;
            let report = kreki_realtime::mqtt::sync::sync_credentials(
                &pool,
                &config.mqtt.username,
                password,
                &password_file,
                &acl_file,
            )
            .await?;
            say(&format!(
                "wrote {} and {} ({} live devices)",
                password_file.display(),
                acl_file.display(),
                report.devices
            ));
            Ok(())
        }
        Command::Guidance {
            command: GuidanceCommand::LoadBuiltin,
        } => {
            let pool = config.database.pool().map_err(anyhow::Error::msg)?;
            let stored = kreki_cms::demo::load(&pool)
                .await
                .map_err(|error| anyhow::anyhow!(error.to_problem()))?;
            say(&format!("guidance: {stored} built-in pages stored"));
            Ok(())
        }
        Command::Demo {
            data_dir,
            no_simulate,
            simulate,
        } => crate::demo::run(config, &data_dir, simulate, !no_simulate).await,
        Command::Simulate {
            url,
            password,
            options,
        } => {
            let stop = kreki_platform::shutdown::token_on_signal();
            let stats = kreki_sim::simulate::run(&url, &password, &options, stop).await?;
            say(&format!("simulation stopped: {}", stats.summary()));
            Ok(())
        }
        Command::Volunteer {
            command:
                VolunteerCommand::GrantCert {
                    user,
                    cert,
                    expires,
                },
        } => {
            let code = cert.trim();
            if kreki_dispatch::CertSet::from_codes(&[code]).is_err() {
                anyhow::bail!("--cert: `{code}` must be 1 to 64 characters of a-z, 0-9 and _");
            }
            let pool = config.database.pool().map_err(anyhow::Error::msg)?;
            kreki_dispatch::eligibility::grant(&pool, user, code, expires)
                .await
                .context("granting the certification")?;
            say(&format!(
                "granted {code} to {user}{}",
                expires.map_or(String::new(), |at| format!(" until {}", at.to_rfc3339()))
            ));
            Ok(())
        }
        Command::Loadtest { command } => loadtest(&config, command).await,
        Command::Pii {
            command: PiiCommand::GenerateKey,
        } => {
            say(&kreki_platform::pii::generate_key());
            Ok(())
        }
        Command::Pii {
            command: PiiCommand::Reseal,
        } => {
            let pii = crate::pii::keys(&config)?;
            let pool = config.database.pool().map_err(anyhow::Error::msg)?;
            let count = crate::pii::reseal_all(&pool, &pii, config.pii.reseal_batch).await?;
            say(&format!(
                "resealed {} NIKs under key `{}`; {} search hashes wrapped with the newest search key; {} unreadable",
                count.resealed,
                pii.current_kid(),
                count.rehashed,
                count.unreadable
            ));
            anyhow::ensure!(
                count.unreadable == 0,
                "{} stored NIKs cannot be read with pii.keys (see the log); keep their keys configured",
                count.unreadable
            );
            Ok(())
        }
        Command::Config => {
            say(&format!("{config:#?}"));
            Ok(())
        }
        Command::FakeBmkg { listen } => {
            let fake = kreki_cap::fake::FakeBmkg::start(listen).await?;
            say(&format!("fake BMKG: feed at {}", fake.feed_url()));
            kreki_platform::shutdown::signal().await;
            drop(fake);
            Ok(())
        }
        // Answered in `main`, before logging and the runtime start.
        Command::Openapi => anyhow::bail!("`kreki openapi` runs without the async runtime"),
    }
}

/// The OpenAPI description of every service, as served at `/openapi.json`, without touching any
/// database (the app is built over an address nothing listens on, in a runtime of its own that
/// stops its workers at once) and with a throwaway signing key when none is configured.
fn openapi_json(mut config: Config) -> anyhow::Result<String> {
    if config.auth.signing_key_file.is_none() && config.auth.signing_key_pem.is_none() {
        config.auth.signing_key_pem = Some(kreki_auth::keys::generate_pem()?.into());
    }
    config.database.url = "postgres://kreki@127.0.0.1:1/openapi-only"
        .to_owned()
        .into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = config.database.pool().map_err(anyhow::Error::msg)?;
        let shutdown = kreki_platform::shutdown::CancellationToken::new();
        shutdown.cancel();
        let app = app::build(&config, &pool, &Services::all(), &shutdown)?;
        Ok(serde_json::to_string_pretty(&app.openapi)?)
    })
}

/// `kreki loadtest …`: runs the load generator against the server this configuration describes,
/// prints its tables, and fails when a correctness check failed.
async fn loadtest(
    config: &Config,
    command: kreki_sim::loadtest::LoadtestCommand,
) -> anyhow::Result<()> {
    let plan = kreki_sim::loadtest::Plan::from_command(
        command,
        &format!("http://{}", config.server.listen),
    )?;
    let report = kreki_sim::loadtest::run(loadtest_instance(config)?, &plan).await?;
    say(&report.render());
    let problems = report.problems();
    anyhow::ensure!(
        problems.is_empty(),
        "checks failed: {}",
        problems.join("; ")
    );
    Ok(())
}

/// The instance under load as the load generator needs it: this configuration's database, signing
/// key and dispatch defaults.
///
/// # Errors
/// When the database settings are invalid.
pub fn loadtest_instance(config: &Config) -> anyhow::Result<kreki_sim::loadtest::Instance> {
    Ok(kreki_sim::loadtest::Instance {
        pool: config.database.pool().map_err(anyhow::Error::msg)?,
        auth: config.auth.clone(),
        dispatch: config.dispatch.clone(),
    })
}

/// Validates CLI input for a new account with the same rules as the API.
///
/// # Errors
/// Names the flag that is wrong.
pub fn new_account(
    phone: &str,
    password: &str,
    name: &str,
    email: Option<&str>,
    roles: &[String],
) -> anyhow::Result<NewAccount> {
    let phone = Phone::parse(phone).map_err(|why| anyhow::anyhow!("--phone: {why}"))?;
    let password =
        NewPassword::parse(password).map_err(|why| anyhow::anyhow!("--password: {why}"))?;
    let name = PersonName::parse(name).map_err(|why| anyhow::anyhow!("--name: {why}"))?;
    let email = email
        .map(Email::parse)
        .transpose()
        .map_err(|why| anyhow::anyhow!("--email: {why}"))?;
    let roles = roles
        .iter()
        .map(|role| {
            Role::parse(role).ok_or_else(|| {
                anyhow::anyhow!(
                    "--role: `{role}` is not one of citizen, volunteer, coordinator, trainer, admin"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(NewAccount {
        phone,
        password,
        name,
        email,
        roles: Roles::new(roles),
    })
}

/// Creates `path` with a new private key, readable by its owner only.
///
/// # Errors
/// When the file exists or cannot be written.
pub fn write_new_key(path: &Path) -> anyhow::Result<()> {
    let pem = kreki_auth::keys::generate_pem()?;
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Prints a line for the operator on standard output (logs go to the log stream).
#[expect(clippy::print_stdout, reason = "the CLI's answer to its operator")]
pub fn say(line: &str) {
    println!("{line}");
}
