//! The matcher benchmark of BENCHMARKS.md: "nearest 10 eligible within 2 km" over volunteers spread
//! uniformly over greater Jakarta (lng 106.65..107.05, lat -6.40..-6.05, fixed seed), answered by
//! our in-process matcher, by PostGIS (`ST_DWithin` + `ORDER BY geog <-> point LIMIT 10` on a
//! GiST-indexed `geography`) and by Redis (`GEOSEARCH .. BYRADIUS 2000 m ASC COUNT 10`), side by side
//! in one run on the same points; plus location updates per second into the index, and a sweep of
//! H3 resolutions that justifies the default.
//!
//! Run: `cargo bench -p kreki-dispatch --bench matcher`. Environment:
//! - `KREKI_BENCH_SIZES` (default `100000,1000000`): volunteer counts.
//! - `KREKI_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`): a server
//!   where the bench may create and drop a scratch database `kreki_bench_<pid>` (needs PostGIS).
//! - `KREKI_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`): the bench adds, then deletes, the
//!   key `kreki:bench:matcher:<pid>`.
//! - `KREKI_BENCH_RESOLUTIONS` (default `7,8,9,10`): H3 resolutions of the sweep (empty: none).
//! - `KREKI_BENCH_SKIP` (e.g. `postgis,redis`): peers to leave out.
//!
//! Besides criterion's own report (means with confidence intervals), every engine is timed over
//! many individual queries to print p50/p99/p99.9 latencies and queries per second on one core, as
//! markdown rows on stderr.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::Criterion;
use kreki_dispatch::geo::LatLng;
use kreki_dispatch::matcher::{CertSet, MatchQuery, Matcher, MatcherConfig, VolunteerState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The seed of the shared benchmark data (docs/DESIGN.md: fixed, so runs compare).
const SEED: u64 = 20_261_121;
const LAT_RANGE: std::ops::Range<f64> = -6.40..-6.05;
const LNG_RANGE: std::ops::Range<f64> = 106.65..107.05;
const RADIUS_M: f64 = 2_000.0;
const LIMIT: usize = 10;
/// Share of volunteers holding the rare certification of the "sparse" sweep scenario.
const RARE_SHARE: f64 = 0.01;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    env_or(name, default)
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

fn random_point(rng: &mut StdRng) -> BenchResult<LatLng> {
    Ok(LatLng::new(
        rng.random_range(LAT_RANGE),
        rng.random_range(LNG_RANGE),
    )?)
}

/// The seeded data set of one size.
struct Data {
    volunteers: Vec<VolunteerState>,
    queries: Vec<LatLng>,
    /// Location updates: a volunteer moving 0 to 50 m, as a phone reports while on duty.
    updates: Vec<(Uuid, LatLng)>,
}

impl Data {
    fn generate(n: usize) -> BenchResult<Self> {
        let mut rng = StdRng::seed_from_u64(SEED);
        let rare = CertSet::from_codes(&["rare_cert"])?;
        let mut volunteers = Vec::with_capacity(n);
        for i in 0..n {
            volunteers.push(VolunteerState {
                id: Uuid::from_u128(i as u128),
                position: random_point(&mut rng)?,
                position_at: now() - TimeDelta::seconds(30),
                on_duty: true,
                busy: false,
                rest_until: None,
                certifications: if rng.random_bool(RARE_SHARE) {
                    rare
                } else {
                    CertSet::EMPTY
                },
                verified_practitioner: false,
            });
        }
        let mut query_rng = StdRng::seed_from_u64(SEED + 1);
        let queries = (0..100_000)
            .map(|_| random_point(&mut query_rng))
            .collect::<BenchResult<Vec<_>>>()?;
        let mut update_rng = StdRng::seed_from_u64(SEED + 2);
        let mut updates = Vec::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let v = &volunteers[update_rng.random_range(0..n)];
            let lat = v.position.lat() + update_rng.random_range(-0.00045..0.00045);
            let lng = v.position.lng() + update_rng.random_range(-0.00045..0.00045);
            updates.push((v.id, LatLng::new(lat, lng)?));
        }
        Ok(Self {
            volunteers,
            queries,
            updates,
        })
    }

    fn matcher(&self, resolution: u8) -> Matcher {
        let mut matcher = Matcher::new(MatcherConfig {
            h3_resolution: resolution,
            ..MatcherConfig::default()
        });
        for v in &self.volunteers {
            matcher.upsert(*v);
        }
        matcher
    }
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds, Linux). The
/// machine is shared: wall-clock means include time other processes held the core, CPU time not.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Latencies of individually timed operations.
struct Timings {
    engine: String,
    size: usize,
    samples_ns: Vec<u64>,
    total: Duration,
    /// CPU time of this thread over the timed loop, if known.
    cpu: Option<Duration>,
}

impl Timings {
    fn measure(engine: &str, size: usize, count: usize, mut op: impl FnMut(usize)) -> Self {
        let mut samples_ns = Vec::with_capacity(count);
        // Warm up caches and connections.
        for i in 0..count.min(1_000) / 10 {
            op(i);
        }
        let cpu_start = thread_cpu_ns();
        let start = Instant::now();
        for i in 0..count {
            let t = Instant::now();
            op(i);
            samples_ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        let total = start.elapsed();
        let cpu = cpu_start
            .zip(thread_cpu_ns())
            .map(|(from, to)| Duration::from_nanos(to.saturating_sub(from)));
        samples_ns.sort_unstable();
        Self {
            engine: engine.to_owned(),
            size,
            samples_ns,
            total,
            cpu,
        }
    }

    fn percentile_us(&self, p: f64) -> f64 {
        if self.samples_ns.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.samples_ns.len() as f64) * p).ceil() as usize;
        self.samples_ns[rank.clamp(1, self.samples_ns.len()) - 1] as f64 / 1_000.0
    }

    fn mean_us(&self) -> f64 {
        self.total.as_secs_f64() * 1e6 / self.samples_ns.len().max(1) as f64
    }

    fn per_s(&self) -> f64 {
        self.samples_ns.len() as f64 / self.total.as_secs_f64()
    }

    /// Operations per second of this thread's CPU time (what one dedicated core would do).
    /// Not shown for the peers: their work happens in the server process, not on this thread.
    fn per_cpu_s(&self) -> String {
        match self.cpu {
            Some(cpu) if self.engine.starts_with("matcher") || self.engine.starts_with("res ") => {
                format!("{:.0}", self.samples_ns.len() as f64 / cpu.as_secs_f64())
            }
            _ => "—".to_owned(),
        }
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.engine,
            self.size,
            self.samples_ns.len(),
            self.per_s(),
            self.per_cpu_s(),
            self.mean_us(),
            self.percentile_us(0.50),
            self.percentile_us(0.99),
            self.percentile_us(0.999),
        )
    }
}

fn query<'a>(
    point: LatLng,
    radius_m: f64,
    required: &'a CertSet,
    exclude: &'a HashSet<Uuid>,
) -> MatchQuery<'a> {
    MatchQuery {
        point,
        radius_m,
        limit: LIMIT,
        required,
        requires_verified: false,
        exclude,
        now: now(),
    }
}

/// PostGIS in a scratch database of its own, dropped at the end.
struct Postgis {
    admin_url: String,
    name: String,
    conn: PgConnection,
}

impl Postgis {
    async fn setup(data: &Data) -> BenchResult<Self> {
        let admin_url = env_or(
            "KREKI_BENCH_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let name = format!("kreki_bench_{}", std::process::id());
        let mut admin = PgConnection::connect(&admin_url).await?;
        // Identifiers cannot be bound; the name is ours (digits and underscores only).
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut admin)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => return Err("KREKI_BENCH_DATABASE_URL has no database part".into()),
        };
        match Self::load(&url, data).await {
            Ok(conn) => Ok(Self {
                admin_url,
                name,
                conn,
            }),
            Err(e) => {
                // Do not leave a half-loaded scratch database behind.
                if let Err(drop_error) = drop_database(&admin_url, &name).await {
                    eprintln!("PostGIS: could not drop {name}: {drop_error}");
                }
                Err(e)
            }
        }
    }

    /// Creates, fills and indexes the table; the connection is kept for the queries.
    async fn load(url: &str, data: &Data) -> BenchResult<PgConnection> {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::raw_sql(
            "CREATE EXTENSION IF NOT EXISTS postgis;
             CREATE TABLE bench_volunteer (id uuid NOT NULL, position geography(Point, 4326) NOT NULL);",
        )
        .execute(&mut conn)
        .await?;
        let started = Instant::now();
        let mut copy = conn
            .copy_in_raw("COPY bench_volunteer (id, position) FROM STDIN")
            .await?;
        let mut chunk = String::with_capacity(1 << 20);
        for v in &data.volunteers {
            let _ = writeln!(
                chunk,
                "{}\tSRID=4326;POINT({} {})",
                v.id,
                v.position.lng(),
                v.position.lat()
            );
            if chunk.len() > (1 << 20) - 128 {
                copy.send(chunk.as_bytes()).await?;
                chunk.clear();
            }
        }
        copy.send(chunk.as_bytes()).await?;
        copy.finish().await?;
        let loaded = started.elapsed();
        // One statement per call: VACUUM refuses to run in the implicit transaction of a batch.
        for statement in [
            "CREATE INDEX bench_volunteer_position ON bench_volunteer USING gist (position)",
            "VACUUM ANALYZE bench_volunteer",
        ] {
            sqlx::raw_sql(statement).execute(&mut conn).await?;
        }
        eprintln!(
            "PostGIS: {} rows copied in {:.1} s, indexed in {:.1} s",
            data.volunteers.len(),
            loaded.as_secs_f64(),
            (started.elapsed() - loaded).as_secs_f64()
        );
        Ok(conn)
    }

    async fn nearest(&mut self, point: LatLng) -> Result<Vec<(Uuid, f64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, ST_Distance(position, q.point)
             FROM bench_volunteer,
                  (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS point) AS q
             WHERE ST_DWithin(position, q.point, $3)
             ORDER BY position <-> q.point
             LIMIT 10",
        )
        .bind(point.lng())
        .bind(point.lat())
        .bind(RADIUS_M)
        .fetch_all(&mut self.conn)
        .await
    }

    async fn explain(&mut self, point: LatLng) -> Result<String, sqlx::Error> {
        let lines: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT id
             FROM bench_volunteer,
                  (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS point) AS q
             WHERE ST_DWithin(position, q.point, $3)
             ORDER BY position <-> q.point
             LIMIT 10",
        )
        .bind(point.lng())
        .bind(point.lat())
        .bind(RADIUS_M)
        .fetch_all(&mut self.conn)
        .await?;
        Ok(lines.join("\n"))
    }

    async fn teardown(self) -> BenchResult<()> {
        self.conn.close().await?;
        drop_database(&self.admin_url, &self.name).await
    }
}

async fn drop_database(admin_url: &str, name: &str) -> BenchResult<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    // The name is ours: `kreki_bench_` and digits.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}

/// Redis with the same points under a scratch key, deleted at the end.
struct RedisGeo {
    conn: redis::aio::MultiplexedConnection,
    key: String,
}

impl RedisGeo {
    async fn setup(data: &Data) -> BenchResult<Self> {
        let url = env_or("KREKI_BENCH_REDIS_URL", "redis://127.0.0.1:6379");
        let client = redis::Client::open(url)?;
        // The default response timeout (0.5 s) is shorter than a 1M-member GEOSEARCH can take on
        // a busy machine.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let key = format!("kreki:bench:matcher:{}", std::process::id());
        redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut conn)
            .await?;
        let started = Instant::now();
        if let Err(e) = Self::load(&mut conn, &key, data).await {
            // Do not leave a half-filled scratch key behind.
            let unlinked = redis::cmd("UNLINK")
                .arg(&key)
                .query_async::<()>(&mut conn)
                .await;
            if let Err(unlink_error) = unlinked {
                eprintln!("Redis: could not delete {key}: {unlink_error}");
            }
            return Err(e.into());
        }
        eprintln!(
            "Redis: {} members added in {:.1} s",
            data.volunteers.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Self { conn, key })
    }

    async fn load(
        conn: &mut redis::aio::MultiplexedConnection,
        key: &str,
        data: &Data,
    ) -> redis::RedisResult<()> {
        for batch in data.volunteers.chunks(10_000) {
            let mut cmd = redis::cmd("GEOADD");
            cmd.arg(key);
            for v in batch {
                cmd.arg(v.position.lng())
                    .arg(v.position.lat())
                    .arg(v.id.simple().to_string());
            }
            cmd.query_async::<()>(conn).await?;
        }
        Ok(())
    }

    async fn nearest(&mut self, point: LatLng) -> redis::RedisResult<Vec<(String, f64)>> {
        redis::cmd("GEOSEARCH")
            .arg(&self.key)
            .arg("FROMLONLAT")
            .arg(point.lng())
            .arg(point.lat())
            .arg("BYRADIUS")
            .arg(RADIUS_M)
            .arg("m")
            .arg("ASC")
            .arg("COUNT")
            .arg(LIMIT)
            .arg("WITHDIST")
            .query_async(&mut self.conn)
            .await
    }

    async fn teardown(mut self) -> BenchResult<()> {
        // UNLINK frees the million members in the background instead of blocking the server.
        redis::cmd("UNLINK")
            .arg(&self.key)
            .query_async::<()>(&mut self.conn)
            .await?;
        Ok(())
    }
}

fn main() -> BenchResult<()> {
    let sizes = env_list("KREKI_BENCH_SIZES", "100000,1000000");
    let resolutions = env_list("KREKI_BENCH_RESOLUTIONS", "7,8,9,10");
    let skip = env_or("KREKI_BENCH_SKIP", "");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut rows = Vec::new();
    let mut sweep = Vec::new();
    let none = HashSet::new();
    let empty = CertSet::EMPTY;
    let rare = CertSet::from_codes(&["rare_cert"])?;

    for &size in &sizes {
        let size = usize::try_from(size)?;
        let data = Data::generate(size)?;
        let started = Instant::now();
        let matcher = data.matcher(kreki_dispatch::matcher::DEFAULT_H3_RESOLUTION);
        eprintln!(
            "Matcher: {size} volunteers loaded in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let queries = &data.queries;

        // Our matcher.
        let mut found = 0_usize;
        let timings = Timings::measure("matcher", size, queries.len(), |i| {
            found += matcher
                .nearest(&query(queries[i], RADIUS_M, &empty, &none))
                .len();
        });
        eprintln!(
            "matcher: {:.2} candidates per query on average",
            found as f64 / (queries.len() + queries.len().min(1_000) / 10) as f64
        );
        rows.push(timings.row());
        let mut i = 0;
        criterion.bench_function(&format!("nearest10_2km/matcher/{size}"), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(matcher.nearest(&query(queries[i], RADIUS_M, &empty, &none)))
            });
        });

        // Location updates into the index.
        let mut updated = data.matcher(kreki_dispatch::matcher::DEFAULT_H3_RESOLUTION);
        let at = now();
        let updates = &data.updates;
        let mut k = 0;
        let timings = Timings::measure("matcher update_position", size, updates.len(), |_| {
            let (id, position) = updates[k % updates.len()];
            k += 1;
            black_box(updated.update_position(id, position, at));
        });
        rows.push(timings.row());
        criterion.bench_function(&format!("update_position/matcher/{size}"), |b| {
            b.iter(|| {
                let (id, position) = updates[k % updates.len()];
                k += 1;
                black_box(updated.update_position(id, position, at))
            });
        });
        drop(updated);

        // PostGIS.
        if !skip.contains("postgis") {
            match runtime.block_on(Postgis::setup(&data)) {
                Ok(mut pg) => {
                    if let Ok(plan) = runtime.block_on(pg.explain(queries[0])) {
                        eprintln!("PostGIS plan:\n{plan}");
                    }
                    let count = 5_000.min(queries.len());
                    let mut failures = 0;
                    let timings = Timings::measure("PostGIS", size, count, |i| {
                        if runtime.block_on(pg.nearest(queries[i])).is_err() {
                            failures += 1;
                        }
                    });
                    if failures > 0 {
                        eprintln!("PostGIS: {failures} queries failed");
                    }
                    rows.push(timings.row());
                    let mut i = 0;
                    criterion.bench_function(&format!("nearest10_2km/postgis/{size}"), |b| {
                        b.iter(|| {
                            i = (i + 1) % queries.len();
                            black_box(runtime.block_on(pg.nearest(queries[i])).ok())
                        });
                    });
                    if let Err(e) = runtime.block_on(pg.teardown()) {
                        eprintln!("PostGIS: could not drop the scratch database: {e}");
                    }
                }
                Err(e) => eprintln!("PostGIS skipped: {e}"),
            }
        }

        // Redis.
        if !skip.contains("redis") {
            match runtime.block_on(RedisGeo::setup(&data)) {
                Ok(mut redis) => {
                    let count = 20_000.min(queries.len());
                    let mut failures = 0;
                    let timings = Timings::measure("Redis GEOSEARCH", size, count, |i| {
                        if runtime.block_on(redis.nearest(queries[i])).is_err() {
                            failures += 1;
                        }
                    });
                    if failures > 0 {
                        eprintln!("Redis: {failures} queries failed");
                    }
                    rows.push(timings.row());
                    let mut i = 0;
                    criterion.bench_function(&format!("nearest10_2km/redis/{size}"), |b| {
                        b.iter(|| {
                            i = (i + 1) % queries.len();
                            black_box(runtime.block_on(redis.nearest(queries[i])).ok())
                        });
                    });
                    if let Err(e) = runtime.block_on(redis.teardown()) {
                        eprintln!("Redis: could not delete the scratch key: {e}");
                    }
                }
                Err(e) => eprintln!("Redis skipped: {e}"),
            }
        }
        drop(matcher);

        // Resolution sweep: dense (everyone eligible, nearest 10 found early) and sparse (1 % hold
        // the required certification, so the whole radius is often searched).
        for &resolution in &resolutions {
            let resolution = u8::try_from(resolution)?;
            let matcher = data.matcher(resolution);
            for radius_m in [1_000.0, 2_000.0, 5_000.0] {
                for (scenario, required) in [("dense", &empty), ("sparse 1 %", &rare)] {
                    let count = 20_000.min(queries.len());
                    let timings = Timings::measure(
                        &format!("res {resolution}, {scenario}, {} km", radius_m / 1_000.0),
                        size,
                        count,
                        |i| {
                            black_box(
                                matcher.nearest(&query(queries[i], radius_m, required, &none)),
                            );
                        },
                    );
                    sweep.push(timings.row());
                }
            }
        }
    }
    criterion.final_summary();

    let header = "| engine | volunteers | timed ops | ops/s (wall) | ops/s (per CPU s) | mean µs | p50 µs | p99 µs | p99.9 µs |\n|---|---|---|---|---|---|---|---|---|";
    eprintln!("\n## Nearest 10 within 2 km, and location updates\n{header}");
    for row in &rows {
        eprintln!("{row}");
    }
    if !sweep.is_empty() {
        eprintln!("\n## H3 resolution sweep (matcher only)\n{header}");
        for row in &sweep {
            eprintln!("{row}");
        }
    }
    Ok(())
}
