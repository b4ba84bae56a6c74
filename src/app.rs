//! Assembles the KREKI services chosen for this process into one HTTP server: their routes and
//! OpenAPI, the shared middleware, health and metrics endpoints, the API docs, and their background
//! workers, all tied to one shutdown token.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use kreki_platform::health::{DatabaseCheck, MigrationsCheck, ReadinessCheck};
use kreki_platform::shutdown::CancellationToken;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;

/// Every migration of every service (one schema each), compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A service `kreki serve --services` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// KREKI ID: accounts, tokens, roles, OAuth2 clients, JWKS.
    Auth,
    /// The WebSocket hub at `/v1/ws`.
    Realtime,
    /// Alerts, volunteers, the matcher, offers and assignments (and their background dispatcher).
    Dispatch,
    /// Training and certification: courses, quizzes, certificates, expiry sweep.
    Lms,
    /// The SATUSEHAT bridge (practitioner verification, Encounter sync) and the FHIR R4 API for
    /// health systems.
    Bridge,
    /// First-aid guidance pages (the CMS).
    Guidance,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 6] = [
        Service::Auth,
        Service::Realtime,
        Service::Dispatch,
        Service::Lms,
        Service::Bridge,
        Service::Guidance,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Service::Auth => "auth",
            Service::Realtime => "realtime",
            Service::Dispatch => "dispatch",
            Service::Lms => "lms",
            Service::Bridge => "bridge",
            Service::Guidance => "guidance",
        }
    }
}

/// The set of services one process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services(BTreeSet<Service>);

impl Services {
    /// Every service (what `kreki serve` runs by default).
    pub fn all() -> Self {
        Self(Service::ALL.into_iter().collect())
    }

    /// Parses names such as `auth,dispatch`; `all` means every service.
    ///
    /// # Errors
    /// Names the unknown service and lists the known ones.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for name in names {
            let name = name.trim();
            if name == "all" {
                return Ok(Self::all());
            }
            let service = Service::ALL
                .into_iter()
                .find(|service| service.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        Service::ALL.iter().map(|service| service.name()).collect();
                    format!(
                        "--services: unknown service `{name}`; known: all, {}",
                        known.join(", ")
                    )
                })?;
            set.insert(service);
        }
        if set.is_empty() {
            return Err("--services: name at least one service".to_owned());
        }
        Ok(Self(set))
    }

    /// True when `service` runs here.
    pub fn contains(&self, service: Service) -> bool {
        self.0.contains(&service)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "KREKI API",
        description = "Emergency geo-dispatch for Indonesia. Errors are `application/problem+json`; times are UTC (RFC 3339); coordinates are WGS84 `lat`/`lng` in degrees.",
        license(name = "AGPL-3.0-or-later"),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "KREKI ID: accounts and tokens"),
        (name = "admin", description = "Administration of accounts and OAuth2 clients"),
        (name = "realtime", description = "The live channel: offers and alert updates over WebSocket"),
        (name = "dispatch", description = "Panic alerts, volunteers on duty, offers and assignments"),
        (name = "push", description = "Devices that get offers by FCM or Web Push when the app is in the background"),
        (name = "mqtt", description = "MQTT devices: panic buttons and location trackers, their credentials"),
        (name = "sms", description = "The SMS provider's webhooks (inbound texts, delivery statuses), signed with X-Twilio-Signature"),
        (name = "lms", description = "Training and certification: courses, quizzes, certificates"),
        (name = "volunteers", description = "Volunteers: duty, position, practitioner verification"),
        (name = "warnings", description = "Warnings in and out: CAP 1.2 warnings read from BMKG's feeds, area broadcasts, the public CAP 1.2 feed"),
        (name = "guidance", description = "First-aid guidance pages in Bahasa Indonesia and English (Markdown, served sanitised)"),
        (name = "fhir", description = "FHIR R4 for health systems (`application/fhir+json`, OperationOutcome errors) and SATUSEHAT sync"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from /v1/auth/login or /v1/auth/token"))
                    .build(),
            ),
        );
    }
}

/// A built application: the router to serve and the workers it started.
pub struct App {
    /// Every route, with the shared middleware.
    pub router: Router,
    /// The OpenAPI description of the routes (also served at `/openapi.json`).
    pub openapi: utoipa::openapi::OpenApi,
    /// Background tasks; they stop when the shutdown token given to [`build`] is cancelled.
    pub workers: Vec<JoinHandle<()>>,
}

/// Builds the services in `services` over `pool`.
///
/// # Errors
/// When a service cannot be set up from `config` (for example an unreadable key file).
pub fn build(
    config: &Config,
    pool: &PgPool,
    services: &Services,
    shutdown: &CancellationToken,
) -> anyhow::Result<App> {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi());
    let mut workers = Vec::new();

    let pii = crate::pii::keys(config)?;
    if services.contains(Service::Dispatch) || services.contains(Service::Bridge) {
        workers.push(tokio::spawn(crate::pii::reseal_at_start(
            pool.clone(),
            pii.clone(),
            config.pii.reseal_batch,
            shutdown.clone(),
        )));
    }
    let auth = kreki_auth::build(pool.clone(), config.auth.clone())?
        .with_erasers(crate::erasure::hooks(pool));
    let sms = kreki_sms::build(pool.clone(), config.sms.clone())?;
    if services.contains(Service::Auth) {
        if auth.service.keys().current().is_none() {
            anyhow::bail!(
                "auth.signing_key_file: KREKI ID needs a signing key; create one with `kreki keys generate --out FILE`"
            );
        }
        api = api.merge(kreki_auth::routes::router(auth.clone()));
        // Texts go with KREKI ID: it sends the phone codes, and the provider's webhooks land here.
        auth.service.set_sms(sms.service.clone());
        api = api.merge(kreki_sms::routes::router(sms.clone()));
        workers.push(tokio::spawn(kreki_auth::worker::run(
            pool.clone(),
            config.auth.throttle_window_s,
            shutdown.clone(),
        )));
    } else if config.auth.jwks_url.is_none() && auth.service.keys().public_keys().is_empty() {
        anyhow::bail!(
            "auth.jwks_url: without the auth service here, set the JWKS URL of KREKI ID (or key files) to verify tokens"
        );
    }

    // The hub exists where the realtime service runs; the other services publish into it. With
    // `[realtime.redis]` it is one hub across every instance sharing that Redis.
    let (hub, bus) = if services.contains(Service::Realtime) {
        let (hub, bus) = kreki_realtime::bus::hub(config.realtime.clone(), shutdown.clone())?;
        (Some(hub), bus)
    } else {
        (None, None)
    };
    // Push goes with the hub: `Pusher::offer` publishes the frame, then pushes by policy.
    let pusher = match &hub {
        Some(hub) => {
            let pusher = kreki_realtime::push::Pusher::from_config(
                config.push.clone(),
                pool.clone(),
                hub.clone(),
                shutdown.clone(),
            )?;
            // With the Redis bus, an offer acknowledged on another instance's socket counts too.
            Some(match &bus {
                Some(bus) => pusher.with_acknowledgements(Arc::new(
                    kreki_realtime::bus::SharedAcknowledgements::new(hub.clone(), bus.clone()),
                )),
                None => pusher,
            })
        }
        None => None,
    };
    if let Some(pusher) = &pusher {
        api = api.merge(kreki_realtime::push::router(
            kreki_realtime::push::DevicesState {
                pool: pool.clone(),
                verifier: auth.service.verifier().clone(),
                config: Arc::new(config.push.clone()),
                vapid_public_key: pusher.vapid_public_key(),
            },
        ));
        let pusher = pusher.clone();
        let stop = shutdown.clone();
        workers.push(tokio::spawn(async move {
            stop.cancelled().await;
            pusher.drain(Duration::from_secs(2)).await;
        }));
    }

    // Built in every process: eligibility queries (`valid_certifications`) only need the database,
    // so a dispatch-only process uses them too. Reminders reach WebSockets through the hub when it
    // runs here; they are stored and readable over HTTP either way. Certificate changes reach
    // dispatch through the LMS change feed below (it covers every instance), not a direct listener.
    let reminders: Arc<dyn kreki_lms::Notifier> = match &hub {
        Some(hub) => Arc::new(crate::wiring::LmsReminders(hub.clone())),
        None => Arc::new(kreki_lms::ports::NobodyListens),
    };
    let lms = kreki_lms::build(
        pool.clone(),
        config.lms.clone(),
        auth.service.verifier().clone(),
        kreki_lms::Ports {
            listener: Arc::new(kreki_lms::ports::NobodyListens),
            notifier: reminders,
            names: Arc::new(crate::lms_names::AccountNamesFromAuth(auth.service.clone())),
        },
    );

    // Offers not acknowledged on a socket in time go out by text (with the hub: it knows the acks).
    if let Some(hub) = &hub {
        sms.service
            .set_cap_warning(Arc::new(crate::sms_offers::CapWarningToCoordinators(
                hub.clone(),
            )));
    }
    let offer_texts = match &hub {
        Some(hub) if sms.service.enabled() => Some(crate::sms_offers::OfferTexts::new(
            sms.service.clone(),
            hub.clone(),
            pool.clone(),
        )),
        _ => None,
    };
    let dispatch = if services.contains(Service::Dispatch) {
        let notifier: Arc<dyn kreki_dispatch::Notifier> = match &hub {
            Some(hub) => Arc::new(crate::wiring::HubNotifier {
                hub: hub.clone(),
                pusher: pusher.clone(),
                texts: offer_texts.clone(),
            }),
            None => {
                tracing::warn!(
                    "dispatch runs without realtime in this process: offers and updates are not pushed (clients poll)"
                );
                Arc::new(kreki_dispatch::notify::NullNotifier)
            }
        };
        let certs = crate::wiring::Certifications {
            lms: lms.service.clone(),
            granted: kreki_dispatch::PgCertificationSource::new(pool.clone()),
        };
        let (service, queues) = kreki_dispatch::DispatchService::new(
            pool.clone(),
            config.dispatch.clone(),
            kreki_dispatch::service::Ports {
                notifier,
                certs: Arc::new(certs),
                pii: pii.clone(),
            },
        );
        api = api.merge(kreki_dispatch::routes::router(
            kreki_dispatch::DispatchState {
                service: service.clone(),
                verifier: auth.service.verifier().clone(),
            },
        ));
        workers.extend(kreki_dispatch::worker::spawn(
            service.clone(),
            queues,
            shutdown.clone(),
        ));
        // Retention of positions, drills and exact alert positions (`[dispatch.retention]`).
        workers.push(tokio::spawn(kreki_dispatch::retention::run(
            pool.clone(),
            config.dispatch.retention.clone(),
            shutdown.clone(),
        )));
        // Certificate changes from any instance arrive through PostgreSQL (the LMS change feed)
        // and reach the matcher through a bounded queue.
        let (eligibility_tx, eligibility_rx) = tokio::sync::mpsc::channel(1024);
        workers.push(tokio::spawn(crate::wiring::relay_eligibility(
            service.clone(),
            eligibility_rx,
            shutdown.clone(),
        )));
        workers.push(tokio::spawn(kreki_lms::changes::forward(
            pool.clone(),
            Arc::new(crate::wiring::EligibilityRelay(eligibility_tx)),
            shutdown.clone(),
        )));
        if let Some(texts) = &offer_texts {
            texts.set_dispatch(service.clone());
        }
        // Replies to texted offers ("1 K7QM") go through dispatch's own accept and decline.
        sms.service
            .set_inbound_handler(Arc::new(crate::sms_offers::OfferReplies {
                sms: sms.service.clone(),
                dispatch: service.clone(),
                pool: pool.clone(),
            }));
        Some(service)
    } else {
        None
    };

    if let Some(hub) = &hub {
        let mut state =
            kreki_realtime::RealtimeState::new(hub.clone(), auth.service.verifier().clone());
        if let Some(dispatch) = &dispatch {
            state = state
                .with_authorizer(Arc::new(crate::wiring::AlertTopics(dispatch.clone())))
                .with_inbound(Arc::new(crate::wiring::DispatchInbound(dispatch.clone())));
        }
        api = api.merge(kreki_realtime::router(state));
        api = api.merge(kreki_realtime::mqtt::router(
            kreki_realtime::mqtt::MqttState {
                pool: pool.clone(),
                verifier: auth.service.verifier().clone(),
                config: Arc::new(config.mqtt.clone()),
            },
        ));
        workers.push(tokio::spawn(kreki_realtime::worker::run(
            hub.clone(),
            shutdown.clone(),
        )));
    }

    if config.mqtt.enabled {
        // Panic buttons and trackers: the consumer hands panics and positions to dispatch.
        let Some(dispatch) = &dispatch else {
            anyhow::bail!(
                "mqtt.enabled: the MQTT consumer hands panics to dispatch; run it where the dispatch service runs"
            );
        };
        workers.push(tokio::spawn(kreki_realtime::mqtt::run(
            config.mqtt.clone(),
            pool.clone(),
            Arc::new(crate::wiring::MqttPanics(dispatch.clone())),
            Arc::new(crate::wiring::MqttLocations(dispatch.clone())),
            shutdown.clone(),
        )));
    }

    if services.contains(Service::Lms) {
        workers.push(tokio::spawn(kreki_lms::worker::run(
            lms.service.clone(),
            shutdown.clone(),
        )));
        api = api.merge(kreki_lms::routes::router(lms));
    }

    if services.contains(Service::Bridge) {
        // Verdicts are stored on the volunteer (through dispatch's matcher where dispatch runs in
        // this process, in the shared database otherwise); the incident feed reads dispatch's
        // alert changes from the database, so `--services bridge` alone follows dispatch instances
        // elsewhere (the bridge keeps its own cursor and projection).
        let sink: Arc<dyn kreki_bridge_satusehat::domain::PractitionerStatusSink> = match &dispatch
        {
            Some(dispatch) => Arc::new(crate::wiring::PractitionerVerified(dispatch.clone())),
            None => Arc::new(crate::wiring::PractitionerVerifiedInDb(pool.clone())),
        };
        let feed: Arc<dyn kreki_bridge_satusehat::domain::IncidentFeed> =
            Arc::new(crate::wiring::IncidentChanges(pool.clone(), pii.clone()));
        let bridge = kreki_bridge_satusehat::build(
            pool.clone(),
            &config.satusehat,
            auth.service.verifier().clone(),
            sink,
            pii.clone(),
        )?;
        api = api.merge(kreki_bridge_satusehat::router(bridge.clone()));
        workers.extend(kreki_bridge_satusehat::spawn_workers(
            &bridge, feed, shutdown,
        ));
    }

    // Warnings in and out (`[cap]`): with dispatch, which knows who is inside an area.
    if let Some(dispatch) = &dispatch {
        let cap = kreki_cap::CapService::new(
            pool.clone(),
            config.cap.clone(),
            Arc::new(crate::cap_wiring::CapPeople {
                pool: pool.clone(),
                position_max_age_s: dispatch.config().position_max_age_s,
            }),
            crate::cap_wiring::announcer(
                hub.as_ref(),
                pusher.as_ref(),
                dispatch,
                &sms.service,
                pool,
            ),
        );
        workers.extend(kreki_cap::poller::spawn(&cap, shutdown));
        api = api.merge(kreki_cap::router(kreki_cap::CapState {
            service: cap,
            verifier: auth.service.verifier().clone(),
        }));
    }

    if services.contains(Service::Guidance) {
        api = api.merge(kreki_cms::router(kreki_cms::CmsState {
            pool: pool.clone(),
            verifier: auth.service.verifier().clone(),
        }));
    }

    let (router, openapi) = api.split_for_parts();
    let spec = openapi.clone();
    let mut checks: Vec<Box<dyn ReadinessCheck>> = vec![
        Box::new(DatabaseCheck(pool.clone())),
        Box::new(MigrationsCheck {
            pool: pool.clone(),
            migrator: &MIGRATOR,
        }),
    ];
    if let Some(dispatch) = &dispatch {
        // Not ready to dispatch until the matcher holds every volunteer.
        checks.push(Box::new(kreki_dispatch::worker::DispatchReadiness(
            dispatch.clone(),
        )));
    }
    let router = router
        .merge(kreki_platform::health::router(checks))
        .merge(kreki_platform::http::metrics_router())
        .merge(SwaggerUi::new("/docs"))
        .merge(crate::web::router(&config.web))
        .route(
            "/openapi.json",
            get(move || std::future::ready(axum::Json(spec.clone()).into_response())),
        );
    let limits = kreki_platform::http::Limits {
        request_timeout: Duration::from_secs(config.server.request_timeout_s),
        body_limit_bytes: config.server.body_limit_bytes,
    };
    Ok(App {
        router: kreki_platform::http::finish(router, limits),
        openapi,
        workers,
    })
}

/// Applies every pending migration.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations")?;
    Ok(())
}

/// Serves `services` on the configured address until SIGTERM/Ctrl-C, then lets in-flight requests
/// finish (up to `server.shutdown_grace_s`) and stops the workers.
///
/// # Errors
/// When the address cannot be bound or a service cannot be set up.
pub async fn serve(
    config: &Config,
    services: &Services,
    run_migrations: bool,
) -> anyhow::Result<()> {
    serve_until(
        config,
        services,
        run_migrations,
        kreki_platform::shutdown::signal(),
    )
    .await
}

/// [`serve`], stopping when `stop` resolves instead of at the signal (`kreki demo` first stops
/// its simulator, then the server).
///
/// # Errors
/// When the address cannot be bound or a service cannot be set up.
pub async fn serve_until(
    config: &Config,
    services: &Services,
    run_migrations: bool,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = config.database.pool().map_err(anyhow::Error::msg)?;
    if run_migrations {
        migrate(&pool).await?;
    } else {
        match kreki_platform::db::pending_migrations(&pool, &MIGRATOR).await {
            Ok(pending) if !pending.is_empty() => {
                tracing::warn!(
                    pending = pending.len(),
                    "migrations pending: run `kreki migrate`; /readyz answers 503 until then"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "database not reachable yet; /readyz answers 503 until it is")
            }
        }
    }
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot listen on {}", config.server.listen))?;
    let shutdown = CancellationToken::new();
    let app = build(config, &pool, services, &shutdown)?;
    tracing::info!(address = %listener.local_addr()?, "KREKI is listening");
    run(
        listener,
        app,
        shutdown,
        stop,
        Duration::from_secs(config.server.shutdown_grace_s),
    )
    .await?;
    pool.close().await;
    Ok(())
}

/// Serves `app` on `listener` until `stop` resolves, then drains: no new connections, in-flight
/// requests get up to `grace` to finish, workers are cancelled and awaited.
///
/// # Errors
/// When the server fails while running.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: CancellationToken,
    stop: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let signalled = shutdown.clone();
    // WebSocket frames (offers) go out at once rather than waiting for the peer's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set on an accepted connection");
        }
    });
    let server = axum::serve(
        listener,
        app.router
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stop.await;
        signalled.cancel();
    });
    let drain_deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("HTTP server failed")?,
        () = drain_deadline => tracing::warn!(grace_s = grace.as_secs(), "in-flight requests still running after the grace period; exiting anyway"),
    }
    shutdown.cancel();
    for worker in app.workers {
        if tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .is_err()
        {
            tracing::warn!("a background worker did not stop within 5 s");
        }
    }
    tracing::info!("KREKI stopped");
    Ok(())
}
