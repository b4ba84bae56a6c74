//! [`RedisBus`]: the [`Bus`] that numbers messages in Redis and reads them back from one stream on
//! every instance (design in [`crate::bus`]), and the Redis side of its publisher and reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use kreki_auth::{Role, Roles};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::backend::{Backend, Entry, Numberings, Read, Stream, Unreachable, parse_recipients};
use super::config::RedisBusConfig;
use super::handle::HubBus;
use super::outbox::{Command, Outbox};
use super::publisher::Publisher;
use super::reader::Reader;
use crate::config::RealtimeConfig;
use crate::frame::{RESYNC_BODY, Traceparent};
use crate::hub::{Audience, Hub, Numbering};
use crate::ports::BoxFuture;

/// The numbering script (see `publish.lua`).
const PUBLISH_LUA: &str = include_str!("publish.lua");

/// The acknowledgement script (see `ack.lua`).
const ACK_LUA: &str = include_str!("ack.lua");

/// The liveness script (see `alive.lua`).
const ALIVE_LUA: &str = include_str!("alive.lua");

/// The numbering lookup script (see `numbering.lua`).
const NUMBERING_LUA: &str = include_str!("numbering.lua");

/// Stream entries read per `XREAD`.
const READ_BATCH: usize = 512;

/// Users per pipeline when refreshing presence.
const REFRESH_CHUNK: usize = 500;

/// Why the bus could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// `realtime.redis.url` is not a Redis URL, or a Redis command failed.
    #[error("realtime.redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The Redis bus of this instance: a cheap handle (clone it freely) for its status and presence
/// queries. Made by [`RedisBus::start`] together with the [`Hub`] it serves.
#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("instance", &self.shared.instance)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: RedisBusConfig,
    instance: String,
    /// The publisher's link is up.
    publishing: Arc<AtomicBool>,
    /// The reader's last `XREAD` succeeded.
    reading: Arc<AtomicBool>,
    /// For presence queries (multiplexed; the reader has its own connection).
    connection: ConnectionManager,
    /// See [`numbering_period_ms`].
    period_ms: u64,
}

impl RedisBus {
    /// Builds the bus and the hub it serves, and spawns the bus's publisher and stream reader.
    /// Redis need not be up: messages wait in the outbox until it answers the first time, and
    /// after that, while it is down, the hub delivers locally (see [`crate::bus`]). The reader
    /// stops when `shutdown` is cancelled; the publisher goes on carrying what is published
    /// until [`Hub::flush_bus`] (the realtime worker calls it once its sockets closed) or a few
    /// seconds later. Fails only on an unusable URL. Call inside the Tokio runtime.
    pub fn start(
        config: RealtimeConfig,
        redis: RedisBusConfig,
        shutdown: CancellationToken,
    ) -> Result<(Hub, Self), BusError> {
        let client = redis::Client::open(redis.url.expose_secret())?;
        let timeout = Duration::from_millis(redis.response_timeout_ms);
        let manager_config = |response_timeout: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(response_timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500))
        };
        let connection =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeout))?;
        let reader = ConnectionManager::new_lazy_with_config(
            client,
            manager_config(timeout + Duration::from_millis(redis.read_block_ms)),
        )?;
        let instance = if redis.instance_id.is_empty() {
            format!(
                "{}-{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "kreki".to_owned()),
                std::process::id(),
                &Uuid::new_v4().simple().to_string()[..8]
            )
        } else {
            redis.instance_id.clone()
        };
        // Register the series at once, so dashboards show zeros rather than gaps.
        metrics::gauge!("realtime_bus_connected").set(0.0);
        metrics::counter!("realtime_bus_local_deliveries_total").increment(0);
        metrics::counter!("realtime_bus_lost_after_shutdown_total").increment(0);
        let outbox = Arc::new(Outbox::new(
            redis.queue,
            Duration::from_secs(config.replay_window_s),
        ));
        let publishing = Arc::new(AtomicBool::new(false));
        let reading = Arc::new(AtomicBool::new(false));
        let period_ms = numbering_period_ms(&config, &redis);
        let bus = Self {
            shared: Arc::new(Shared {
                config: redis,
                instance: instance.clone(),
                publishing: Arc::clone(&publishing),
                reading: Arc::clone(&reading),
                connection: connection.clone(),
                period_ms,
            }),
        };
        let redis_config = &bus.shared.config;
        let backend = RedisBackend {
            connection,
            publish: redis::Script::new(PUBLISH_LUA),
            ack: redis::Script::new(ACK_LUA),
            alive: redis::Script::new(ALIVE_LUA),
            numbering: redis::Script::new(NUMBERING_LUA),
            prefix: redis_config.key_prefix.clone(),
            instance: instance.clone(),
            stream_max_entries: redis_config.stream_max_entries,
            presence_ttl_ms: redis_config.presence_ttl_s * 1000,
            period_ms,
            session_idle_ms: config.session_idle_s.saturating_mul(1000),
        };
        // Mirror what was published within the replay window, as if this instance had been up.
        let window_ms = config.replay_window_s.saturating_mul(1000);
        let start_id = format!("{}-0", now_ms().saturating_sub(window_ms));
        let stream = RedisStream {
            connection: reader,
            key: format!("{}stream", redis_config.key_prefix),
            options: StreamReadOptions::default()
                .block(usize::try_from(redis_config.read_block_ms).unwrap_or(usize::MAX))
                .count(READ_BATCH),
        };
        let carrier = HubBus {
            outbox: Arc::clone(&outbox),
            numberings: Arc::new(RedisNumberings {
                connection: bus.shared.connection.clone(),
                prefix: redis_config.key_prefix.clone(),
                period_ms,
            }),
            lookup_timeout: timeout,
        };
        let hub = Hub::with_bus(config, shutdown.clone(), Arc::new(carrier));
        let (finish, finished) = (outbox.finish.clone(), outbox.finished.clone());
        let publisher = Publisher::new(backend, hub.clone(), outbox, publishing);
        let refresh_every = Duration::from_secs(redis_config.presence_ttl_s) / 3;
        tokio::spawn(publisher.run(refresh_every, shutdown.clone(), finish, finished));
        let reader = Reader::new(stream, hub.clone(), instance, reading, start_id);
        tokio::spawn(reader.run(shutdown));
        Ok((hub, bus))
    }

    /// Names this instance in presence records.
    pub fn instance_id(&self) -> &str {
        &self.shared.instance
    }

    /// Whether both directions work now: this instance's publishes reach Redis and its reader
    /// receives the stream. While `false`, publishes are delivered on this instance only.
    pub fn is_connected(&self) -> bool {
        self.shared.publishing.load(Ordering::Relaxed)
            && self.shared.reading.load(Ordering::Relaxed)
    }

    /// The instances holding a socket of `user` now (presence records not expired), for example
    /// to decide whether a phone needs a push. Fails when Redis does not answer.
    pub async fn instances_of(&self, user: Uuid) -> Result<Vec<String>, BusError> {
        let mut connection = self.shared.connection.clone();
        let key = format!("{}presence:{user}", self.shared.config.key_prefix);
        let instances: Vec<String> = connection.zrangebyscore(key, now_ms(), "+inf").await?;
        Ok(instances)
    }

    /// The highest `seq` of `epoch` that a socket of `user` on any instance acknowledged (0 when
    /// none did, or the user's shared numbering is in another epoch). Fails when Redis does not
    /// answer.
    pub async fn acknowledged_seq(&self, user: Uuid, epoch: u64) -> Result<u64, BusError> {
        let numberings = RedisNumberings {
            connection: self.shared.connection.clone(),
            prefix: self.shared.config.key_prefix.clone(),
            period_ms: self.shared.period_ms,
        };
        let (current, acked) = numberings.read(user).await?;
        Ok(match current {
            Numbering::Current { epoch: current, .. } if current == epoch => acked,
            _ => 0,
        })
    }
}

/// How long a user's numbering lives at least after their last message, in ms: the session's
/// idle time or the replay window (whichever is longer) plus the presence TTL.
fn numbering_period_ms(config: &RealtimeConfig, redis: &RedisBusConfig) -> u64 {
    config
        .session_idle_s
        .max(config.replay_window_s)
        .max(1)
        .saturating_mul(1000)
        .saturating_add(redis.presence_ttl_s * 1000)
}

/// The publisher's side of Redis: one pipeline per batch.
struct RedisBackend {
    connection: ConnectionManager,
    publish: redis::Script,
    ack: redis::Script,
    alive: redis::Script,
    numbering: redis::Script,
    prefix: String,
    instance: String,
    stream_max_entries: usize,
    presence_ttl_ms: u64,
    /// How long a user's numbering outlives their last message at least, in ms (the period of
    /// the numbering hashes, see `publish.lua`).
    period_ms: u64,
    session_idle_ms: u64,
}

impl RedisBackend {
    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Adds the numbering of one message to `pipe`.
    fn add_publish(
        &self,
        pipe: &mut redis::Pipeline,
        audience: &Audience,
        body: &str,
        origin: &str,
        trace: Option<&Traceparent>,
    ) {
        let (kind, target): (&str, &str) = match audience {
            Audience::User(_) | Audience::Users(_) => ("users", ""),
            Audience::Role(role) | Audience::RoleExcept(role, _) => ("role", role.as_str()),
            Audience::Topic(topic) => ("topic", topic.as_str()),
        };
        let command = pipe
            .cmd("EVALSHA")
            .arg(self.publish.get_hash())
            .arg(0)
            .arg(&self.prefix)
            .arg(kind)
            .arg(target)
            .arg(body)
            .arg(self.period_ms)
            .arg(self.stream_max_entries)
            .arg(origin)
            .arg(trace.map_or("", |trace| &**trace));
        match audience {
            Audience::User(user) => {
                command.arg(user.to_string());
            }
            // For a role, the users given are the ones left out.
            Audience::Users(users) | Audience::RoleExcept(_, users) => {
                let mut users = users.clone();
                users.sort_unstable();
                users.dedup();
                for user in users {
                    command.arg(user.to_string());
                }
            }
            Audience::Role(_) | Audience::Topic(_) => {}
        }
        command.ignore();
    }

    fn add_command(&self, pipe: &mut redis::Pipeline, command: &Command) {
        match command {
            Command::Publish {
                envelope,
                delivered_here,
            } => {
                if matches!(&envelope.audience, Audience::Users(users) if users.is_empty()) {
                    return;
                }
                let origin = if *delivered_here {
                    self.instance.as_str()
                } else {
                    ""
                };
                self.add_publish(
                    pipe,
                    &envelope.audience,
                    envelope.frame.body().as_str(),
                    origin,
                    envelope.frame.trace(),
                );
            }
            Command::Resync(audience) => self.add_publish(pipe, audience, RESYNC_BODY, "", None),
            Command::ResyncEveryone => {
                pipe.cmd("EVALSHA")
                    .arg(self.publish.get_hash())
                    .arg(0)
                    .arg(&self.prefix)
                    .arg("everyone")
                    .arg(&self.instance)
                    .arg("")
                    .arg(self.period_ms)
                    .arg(self.stream_max_entries)
                    .arg("")
                    .arg("")
                    .ignore();
            }
            Command::Attached(user, roles) => {
                self.add_presence(pipe, *user, roles, &[]);
                for role in Role::ALL {
                    if !roles.grants(role) {
                        pipe.zrem(
                            self.key(&format!("role:{}", role.as_str())),
                            user.to_string(),
                        )
                        .ignore();
                    }
                }
            }
            Command::Detached(user) => {
                pipe.zrem(self.key(&format!("presence:{user}")), &self.instance)
                    .ignore();
            }
            Command::Subscribed(user, topic) => {
                self.add_membership(
                    pipe,
                    &format!("topic:{topic}"),
                    &user.to_string(),
                    self.session_expiry(),
                );
            }
            Command::Unsubscribed(user, topic) => {
                pipe.zrem(self.key(&format!("topic:{topic}")), user.to_string())
                    .ignore();
            }
            Command::Acked(user, epoch, seq) => {
                pipe.cmd("EVALSHA")
                    .arg(self.ack.get_hash())
                    .arg(0)
                    .arg(&self.prefix)
                    .arg(self.period_ms)
                    .arg(user.to_string())
                    .arg(*epoch)
                    .arg(*seq)
                    .ignore();
            }
        }
    }

    /// Adds to `pipe` the records of `user` connected here: presence, roles, topics (their
    /// numbering is kept alive by [`Backend::refresh`]).
    fn add_presence(
        &self,
        pipe: &mut redis::Pipeline,
        user: Uuid,
        roles: &Roles,
        topics: &[String],
    ) {
        let presence = self.key(&format!("presence:{user}"));
        let member = user.to_string();
        let session_expiry = self.session_expiry();
        pipe.zadd(&presence, &self.instance, now_ms() + self.presence_ttl_ms)
            .ignore()
            .pexpire(
                &presence,
                i64::try_from(self.presence_ttl_ms).unwrap_or(i64::MAX),
            )
            .ignore();
        for role in Role::ALL {
            if roles.grants(role) {
                self.add_membership(
                    pipe,
                    &format!("role:{}", role.as_str()),
                    &member,
                    session_expiry,
                );
            }
        }
        for topic in topics {
            self.add_membership(pipe, &format!("topic:{topic}"), &member, session_expiry);
        }
    }

    /// Adds `member` to the audience set `suffix` until `expiry` (Unix ms); the set itself expires
    /// with its newest member, so sets of topics nobody follows any more do not pile up.
    fn add_membership(&self, pipe: &mut redis::Pipeline, suffix: &str, member: &str, expiry: u64) {
        let key = self.key(suffix);
        pipe.zadd(&key, member, expiry)
            .ignore()
            .pexpire_at(&key, i64::try_from(expiry).unwrap_or(i64::MAX))
            .ignore();
    }

    /// When a session of a user connected now ends at the latest, in Unix ms: role and topic
    /// memberships are scored with it.
    fn session_expiry(&self) -> u64 {
        now_ms() + self.session_idle_ms + self.presence_ttl_ms
    }

    /// Runs `pipe`; when Redis forgot the scripts (it restarted), loads them and runs it again.
    async fn query(&mut self, pipe: &redis::Pipeline) -> RedisResult<redis::Value> {
        match pipe.query_async(&mut self.connection).await {
            Err(error) if error.code() == Some("NOSCRIPT") => {
                for script in [&self.publish, &self.ack, &self.alive, &self.numbering] {
                    script.load_async(&mut self.connection).await?;
                }
                pipe.query_async(&mut self.connection).await
            }
            result => result,
        }
    }
}

impl Backend for RedisBackend {
    async fn run(&mut self, batch: &[Command]) -> Result<(), Unreachable> {
        let mut pipe = redis::pipe();
        for command in batch {
            self.add_command(&mut pipe, command);
        }
        if pipe.cmd_iter().next().is_none() {
            return Ok(());
        }
        self.query(&pipe).await?;
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), Unreachable> {
        let _: String = redis::cmd("PING").query_async(&mut self.connection).await?;
        Ok(())
    }

    async fn refresh(
        &mut self,
        users: &[(Uuid, Roles, Vec<String>)],
        first: bool,
    ) -> Result<usize, Unreachable> {
        let now = now_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(self.alive.get_hash())
            .arg(0)
            .arg(&self.prefix)
            .arg(now)
            .arg(&self.instance)
            .arg(now + self.presence_ttl_ms)
            .arg(if first { "1" } else { "0" })
            .arg(self.stream_max_entries);
        let reaped: Vec<usize> = redis::from_redis_value(self.query(&pipe).await?)
            .map_err(|error| Unreachable(error.to_string()))?;
        for chunk in users.chunks(REFRESH_CHUNK) {
            let mut pipe = redis::pipe();
            for (user, roles, topics) in chunk {
                self.add_presence(&mut pipe, *user, roles, topics);
            }
            // The numbering of a user connected here lives on while they are.
            let carry = pipe
                .cmd("EVALSHA")
                .arg(self.numbering.get_hash())
                .arg(0)
                .arg(&self.prefix)
                .arg(self.period_ms)
                .arg("1");
            for (user, _, _) in chunk {
                carry.arg(user.to_string());
            }
            carry.ignore();
            self.query(&pipe).await?;
        }
        Ok(reaped.first().copied().unwrap_or(0))
    }

    async fn goodbye(&mut self, users: &[Uuid]) -> Result<(), Unreachable> {
        let mut pipe = redis::pipe();
        pipe.zrem(self.key("alive"), &self.instance).ignore();
        for user in users {
            pipe.zrem(self.key(&format!("presence:{user}")), &self.instance)
                .ignore();
        }
        self.query(&pipe).await?;
        Ok(())
    }
}

/// Users' numberings, read from the numbering hashes (`numbering.lua`).
struct RedisNumberings {
    connection: ConnectionManager,
    prefix: String,
    period_ms: u64,
}

impl RedisNumberings {
    /// `user`'s numbering and the highest `seq` of it a socket acknowledged.
    async fn read(&self, user: Uuid) -> RedisResult<(Numbering, u64)> {
        let mut connection = self.connection.clone();
        let answers: Vec<(String, String, String)> = redis::Script::new(NUMBERING_LUA)
            .arg(&self.prefix)
            .arg(self.period_ms)
            .arg("0")
            .arg(user.to_string())
            .invoke_async(&mut connection)
            .await?;
        let Some((epoch, seq, acked)) = answers.into_iter().next() else {
            return Ok((Numbering::Fresh, 0));
        };
        let numbering = match (epoch.parse(), seq.parse()) {
            (Ok(epoch), Ok(seq)) => Numbering::Current { epoch, seq },
            _ => Numbering::Fresh,
        };
        Ok((numbering, acked.parse().unwrap_or(0)))
    }
}

impl Numberings for RedisNumberings {
    fn numbering(&self, user: Uuid) -> BoxFuture<'_, Result<Numbering, Unreachable>> {
        Box::pin(async move {
            let (numbering, _) = self.read(user).await?;
            Ok(numbering)
        })
    }
}

/// The reader's side of Redis.
struct RedisStream {
    connection: ConnectionManager,
    key: String,
    options: StreamReadOptions,
}

impl Stream for RedisStream {
    async fn read(&mut self, after: &str) -> Result<Vec<Read>, Unreachable> {
        let keys = [self.key.as_str()];
        let ids = [after];
        let reply: Option<StreamReadReply> = self
            .connection
            .xread_options(&keys, &ids, &self.options)
            .await?;
        Ok(reply
            .map(|reply| reply.keys)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|key| key.ids)
            .map(read_entry)
            .collect())
    }
}

/// One stream entry: `{u: "user,…", r: "epoch:seq:…", b: body, o?: origin, t?: traceparent, n}` or
/// `{g: instances, n}` (see `publish.lua`).
fn read_entry(entry: StreamId) -> Read {
    let StreamId { id, mut map, .. } = entry;
    let text = |value: Option<redis::Value>| -> Option<String> {
        value.and_then(|value| redis::from_redis_value::<String>(value).ok())
    };
    let number = text(map.remove("n")).and_then(|n| n.parse().ok());
    let entry = if map.contains_key("g") {
        Entry::ResyncEveryone
    } else {
        let recipients = match (text(map.remove("u")), text(map.remove("r"))) {
            (Some(users), Some(numbers)) => parse_recipients(&users, &numbers),
            _ => None,
        };
        let body = match map.remove("b") {
            Some(redis::Value::BulkString(bytes)) => Utf8Bytes::try_from(bytes).ok(),
            other => text(other).map(Utf8Bytes::from),
        };
        match (recipients, body) {
            (Some(recipients), Some(body)) => Entry::Message {
                recipients,
                body,
                origin: text(map.remove("o")),
                trace: text(map.remove("t")).map(Traceparent::from),
            },
            _ => Entry::Unreadable,
        }
    };
    Read { id, number, entry }
}

/// Now in Unix milliseconds (0 if the clock is before 1970).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
