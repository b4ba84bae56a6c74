//! [`RedisBus`]: the [`Bus`] that numbers messages in Redis and reads them back from one stream on
//! every instance (design in [`crate::bus`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kreki_auth::{Role, Roles};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::config::RedisBusConfig;
use crate::config::RealtimeConfig;
use crate::hub::{Audience, Bus, Envelope, Hub};

/// The numbering script (see `publish.lua`).
const PUBLISH_LUA: &str = include_str!("publish.lua");

/// The acknowledgement script (see `ack.lua`).
const ACK_LUA: &str = include_str!("ack.lua");

/// How often a bus that lost Redis tries it again.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

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
    commands: mpsc::Sender<Command>,
    /// The publisher reached Redis with its last command.
    publishing: AtomicBool,
    /// The reader's last `XREAD` succeeded.
    reading: AtomicBool,
    /// For presence queries (multiplexed; the reader has its own connection).
    connection: ConnectionManager,
    /// Messages delivered on this instance only because Redis was unreachable, oldest first: handed
    /// to the other instances when Redis answers again (at most `queue` of them, none older than
    /// `replay_window_s`).
    held: std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, Envelope)>>,
    /// How long a held message is worth handing over (`realtime.replay_window_s`).
    hold_for: Duration,
}

enum Command {
    Publish(Envelope),
    Attached(Uuid, Roles),
    Detached(Uuid),
    Subscribed(Uuid, String),
    Unsubscribed(Uuid, String),
    Acked(Uuid, u64, u64),
}

impl Bus for RedisBus {
    fn send(&self, envelope: Envelope) -> Result<(), Envelope> {
        if !self.shared.publishing.load(Ordering::Relaxed) {
            metrics::counter!("realtime_bus_local_deliveries_total").increment(1);
            self.hold(&envelope);
            return Err(envelope);
        }
        match self.shared.commands.try_reserve() {
            Ok(permit) => {
                permit.send(Command::Publish(envelope));
                Ok(())
            }
            Err(_) => {
                metrics::counter!("realtime_bus_local_deliveries_total").increment(1);
                tracing::warn!(
                    "realtime.redis.queue is full: message delivered on this instance only"
                );
                Err(envelope)
            }
        }
    }

    fn attached(&self, user: Uuid, roles: &Roles) {
        self.notify(Command::Attached(user, roles.clone()));
    }

    fn detached(&self, user: Uuid) {
        self.notify(Command::Detached(user));
    }

    fn subscribed(&self, user: Uuid, topic: &str) {
        self.notify(Command::Subscribed(user, topic.to_owned()));
    }

    fn unsubscribed(&self, user: Uuid, topic: &str) {
        self.notify(Command::Unsubscribed(user, topic.to_owned()));
    }

    fn acked(&self, user: Uuid, epoch: u64, seq: u64) {
        self.notify(Command::Acked(user, epoch, seq));
    }
}

impl RedisBus {
    /// Builds the bus and the hub it serves, and spawns the bus's publisher and stream reader
    /// (they stop when `shutdown` is cancelled). Redis need not be up: until it answers, the hub
    /// delivers locally (see [`crate::bus`]). Fails only on an unusable URL. Call inside the
    /// Tokio runtime.
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
        let (commands, queue) = mpsc::channel(redis.queue);
        let bus = Self {
            shared: Arc::new(Shared {
                config: redis,
                instance,
                commands,
                publishing: AtomicBool::new(false),
                reading: AtomicBool::new(false),
                connection: connection.clone(),
                held: std::sync::Mutex::new(std::collections::VecDeque::new()),
                hold_for: Duration::from_secs(config.replay_window_s),
            }),
        };
        let hub = Hub::with_bus(config, shutdown.clone(), Arc::new(bus.clone()));
        let publisher = Publisher {
            bus: bus.clone(),
            hub: hub.clone(),
            connection,
            script: redis::Script::new(PUBLISH_LUA),
            ack_script: redis::Script::new(ACK_LUA),
        };
        tokio::spawn(publisher.run(queue, shutdown.clone()));
        tokio::spawn(read_stream(bus.clone(), hub.clone(), reader, shutdown));
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
        let key = self.key(&format!("presence:{user}"));
        let instances: Vec<String> = connection.zrangebyscore(key, now_ms(), "+inf").await?;
        Ok(instances)
    }

    /// The highest `seq` of `epoch` that a socket of `user` on any instance acknowledged (0 when
    /// none did, or the user's shared numbering is in another epoch). Fails when Redis does not
    /// answer.
    pub async fn acknowledged_seq(&self, user: Uuid, epoch: u64) -> Result<u64, BusError> {
        let mut connection = self.shared.connection.clone();
        let (stored, acked): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.key(&format!("user:{user}")))
            .arg("epoch")
            .arg("acked")
            .query_async(&mut connection)
            .await?;
        Ok(if stored == Some(epoch) {
            acked.unwrap_or(0)
        } else {
            0
        })
    }

    /// Keeps a message to users delivered here only, for the other instances once Redis is back.
    /// Role and topic messages are not kept: they are the high-volume broadcasts (positions on
    /// the coordinators' map, alert updates) that dashboards refetch after a new epoch, and
    /// holding them would crowd out the offers.
    fn hold(&self, envelope: &Envelope) {
        if !matches!(envelope.audience, Audience::User(_) | Audience::Users(_)) {
            return;
        }
        let mut held = self
            .shared
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.len() >= self.shared.config.queue {
            held.pop_front();
            metrics::counter!("realtime_bus_held_dropped_total").increment(1);
        }
        held.push_back((std::time::Instant::now(), envelope.clone()));
    }

    /// The held messages still worth handing over, oldest first (emptying the hold).
    fn take_held(&self) -> Vec<Envelope> {
        let mut held = self
            .shared
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hold_for = self.shared.hold_for;
        held.drain(..)
            .filter(|(at, _)| at.elapsed() <= hold_for)
            .map(|(_, envelope)| envelope)
            .collect()
    }

    fn notify(&self, command: Command) {
        if self.shared.publishing.load(Ordering::Relaxed)
            && self.shared.commands.try_send(command).is_err()
        {
            // The periodic refresh writes presence, roles and topics again.
            tracing::debug!("realtime.redis.queue is full: presence update deferred");
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.shared.config.key_prefix)
    }
}

/// The task that runs the bus's commands against Redis, in order.
struct Publisher {
    bus: RedisBus,
    hub: Hub,
    connection: ConnectionManager,
    script: redis::Script,
    ack_script: redis::Script,
}

impl Publisher {
    async fn run(mut self, mut queue: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let shared = Arc::clone(&self.bus.shared);
        let ttl = Duration::from_secs(shared.config.presence_ttl_s);
        let mut refresh = tokio::time::interval(ttl / 3);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let up = shared.publishing.load(Ordering::Relaxed);
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(command) = queue.recv() => self.handle(command).await,
                _ = probe.tick(), if !up => {
                    let pong: RedisResult<String> =
                        redis::cmd("PING").query_async(&mut self.connection).await;
                    if pong.is_ok() {
                        // Write what this instance holds before anything else.
                        self.set_up(true);
                        self.refresh().await;
                        self.hand_over_held().await;
                    }
                }
                _ = refresh.tick(), if up => self.refresh().await,
            }
        }
        // Leave no stale presence behind.
        let users = self.hub.connected_users();
        let mut pipe = redis::pipe();
        for (user, _, _) in &users {
            pipe.zrem(self.bus.key(&format!("presence:{user}")), &shared.instance)
                .ignore();
        }
        if !users.is_empty() {
            let _: RedisResult<()> = pipe.query_async(&mut self.connection).await;
        }
    }

    fn set_up(&self, up: bool) {
        let was = self.bus.shared.publishing.swap(up, Ordering::Relaxed);
        metrics::gauge!("realtime_bus_connected").set(if up { 1.0 } else { 0.0 });
        if was != up {
            if up {
                tracing::info!("realtime: Redis bus connected");
            } else {
                tracing::warn!("realtime: Redis unreachable; delivering on this instance only");
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        let result = match command {
            Command::Publish(envelope) => {
                if let Err(error) = self.publish(&envelope, false).await {
                    tracing::warn!(%error, "realtime: publish through Redis failed; delivered here only");
                    self.set_up(false);
                    metrics::counter!("realtime_bus_local_deliveries_total").increment(1);
                    self.bus.hold(&envelope);
                    self.hub.deliver(envelope);
                }
                return;
            }
            Command::Attached(user, roles) => {
                let mut pipe = redis::pipe();
                self.presence(&mut pipe, user, &roles, &[]);
                for role in Role::ALL {
                    if !roles.grants(role) {
                        pipe.zrem(
                            self.bus.key(&format!("role:{}", role.as_str())),
                            user.to_string(),
                        )
                        .ignore();
                    }
                }
                pipe.query_async::<()>(&mut self.connection).await
            }
            Command::Detached(user) => {
                self.connection
                    .zrem::<_, _, ()>(
                        self.bus.key(&format!("presence:{user}")),
                        &self.bus.shared.instance,
                    )
                    .await
            }
            Command::Subscribed(user, topic) => {
                let mut pipe = redis::pipe();
                self.membership(
                    &mut pipe,
                    &format!("topic:{topic}"),
                    &user.to_string(),
                    self.session_expiry(),
                );
                pipe.query_async::<()>(&mut self.connection).await
            }
            Command::Unsubscribed(user, topic) => {
                self.connection
                    .zrem::<_, _, ()>(self.bus.key(&format!("topic:{topic}")), user.to_string())
                    .await
            }
            Command::Acked(user, epoch, seq) => self
                .ack_script
                .arg(self.bus.key(&format!("user:{user}")))
                .arg(epoch)
                .arg(seq)
                .invoke_async::<u8>(&mut self.connection)
                .await
                .map(|_| ()),
        };
        if let Err(error) = result {
            tracing::debug!(%error, "realtime: presence update failed");
            self.set_up(false);
        }
    }

    /// Hands the messages delivered here only while Redis was away to the other instances: each
    /// is numbered and appended to the stream marked with this instance as its origin, so this
    /// instance's reader records it in the replay rings without sending it to its sockets again.
    /// What fails goes back on hold for the next reconnection.
    async fn hand_over_held(&mut self) {
        let held = self.bus.take_held();
        if held.is_empty() {
            return;
        }
        let count = held.len();
        let mut pending = held.into_iter();
        for envelope in pending.by_ref() {
            if let Err(error) = self.publish(&envelope, true).await {
                tracing::warn!(%error, "realtime: handing over held messages failed; kept for later");
                self.set_up(false);
                self.bus.hold(&envelope);
                for rest in pending {
                    self.bus.hold(&rest);
                }
                return;
            }
        }
        tracing::info!(
            messages = count,
            "realtime: messages delivered here while Redis was away handed to the other instances"
        );
    }

    /// Numbers `envelope` in Redis and appends it to the stream (delivery comes from the reader).
    /// With `delivered_here`, the entry names this instance as its origin (see
    /// [`Self::hand_over_held`]).
    async fn publish(&mut self, envelope: &Envelope, delivered_here: bool) -> RedisResult<()> {
        let Some(body) = self
            .hub
            .frame_body(&envelope.audience, envelope.message.clone())
        else {
            return Ok(());
        };
        let config = self.hub.config();
        let hash_ttl_ms = config
            .session_idle_s
            .max(config.replay_window_s)
            .max(1)
            .saturating_mul(1000)
            .saturating_add(self.bus.shared.config.presence_ttl_s * 1000);
        let (kind, target, users) = match &envelope.audience {
            Audience::User(id) => ("users", String::new(), vec![*id]),
            Audience::Users(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                ("users", String::new(), ids)
            }
            Audience::Role(role) => ("role", role.as_str().to_owned(), Vec::new()),
            Audience::Topic(topic) => ("topic", topic.clone(), Vec::new()),
        };
        if kind == "users" && users.is_empty() {
            return Ok(());
        }
        let mut invocation = self.script.prepare_invoke();
        invocation
            .arg(&self.bus.shared.config.key_prefix)
            .arg(kind)
            .arg(target)
            .arg(body)
            .arg(now_ms())
            .arg(hash_ttl_ms)
            .arg(self.bus.shared.config.stream_max_entries)
            .arg(if delivered_here {
                self.bus.shared.instance.as_str()
            } else {
                ""
            });
        for user in &users {
            invocation.arg(user.to_string());
        }
        let _numbered: u64 = invocation.invoke_async(&mut self.connection).await?;
        Ok(())
    }

    /// Writes presence, role and topic memberships and keeps the numbering of every user
    /// connected here alive.
    async fn refresh(&mut self) {
        let users = self.hub.connected_users();
        for chunk in users.chunks(REFRESH_CHUNK) {
            let mut pipe = redis::pipe();
            for (user, roles, topics) in chunk {
                self.presence(&mut pipe, *user, roles, topics);
            }
            if let Err(error) = pipe.query_async::<()>(&mut self.connection).await {
                tracing::debug!(%error, "realtime: presence refresh failed");
                self.set_up(false);
                return;
            }
        }
    }

    /// Adds to `pipe` the records of `user` connected here: presence, roles, topics, numbering.
    fn presence(&self, pipe: &mut redis::Pipeline, user: Uuid, roles: &Roles, topics: &[String]) {
        let shared = &self.bus.shared;
        let ttl_ms = shared.config.presence_ttl_s * 1000;
        let presence = self.bus.key(&format!("presence:{user}"));
        let member = user.to_string();
        let session_expiry = self.session_expiry();
        pipe.zadd(&presence, &shared.instance, now_ms() + ttl_ms)
            .ignore()
            .pexpire(&presence, i64::try_from(ttl_ms).unwrap_or(i64::MAX))
            .ignore();
        for role in Role::ALL {
            if roles.grants(role) {
                self.membership(
                    pipe,
                    &format!("role:{}", role.as_str()),
                    &member,
                    session_expiry,
                );
            }
        }
        for topic in topics {
            self.membership(pipe, &format!("topic:{topic}"), &member, session_expiry);
        }
        let config = self.hub.config();
        let hash_ttl_ms = config
            .session_idle_s
            .max(config.replay_window_s)
            .max(1)
            .saturating_mul(1000)
            .saturating_add(ttl_ms);
        pipe.pexpire(
            self.bus.key(&format!("user:{user}")),
            i64::try_from(hash_ttl_ms).unwrap_or(i64::MAX),
        )
        .ignore();
    }

    /// Adds `member` to the audience set `suffix` until `expiry` (Unix ms); the set itself expires
    /// with its newest member, so sets of topics nobody follows any more do not pile up.
    fn membership(&self, pipe: &mut redis::Pipeline, suffix: &str, member: &str, expiry: u64) {
        let key = self.bus.key(suffix);
        pipe.zadd(&key, member, expiry)
            .ignore()
            .pexpire_at(&key, i64::try_from(expiry).unwrap_or(i64::MAX))
            .ignore();
    }

    /// When a session of a user connected now ends at the latest, in Unix ms: role and topic
    /// memberships are scored with it.
    fn session_expiry(&self) -> u64 {
        let idle_ms = self.hub.config().session_idle_s.saturating_mul(1000);
        now_ms() + idle_ms + self.bus.shared.config.presence_ttl_s * 1000
    }
}

/// The reader: delivers every stream entry to this instance's hub, in stream order.
async fn read_stream(
    bus: RedisBus,
    hub: Hub,
    mut connection: ConnectionManager,
    shutdown: CancellationToken,
) {
    let shared = Arc::clone(&bus.shared);
    let stream = bus.key("stream");
    // Mirror what was published within the replay window, as if this instance had been up.
    let window_ms = hub.config().replay_window_s.saturating_mul(1000);
    let mut last_id = format!("{}-0", now_ms().saturating_sub(window_ms));
    let options = StreamReadOptions::default()
        .block(usize::try_from(shared.config.read_block_ms).unwrap_or(usize::MAX))
        .count(READ_BATCH);
    loop {
        let keys = [stream.as_str()];
        let ids = [last_id.as_str()];
        let read = tokio::select! {
            () = shutdown.cancelled() => break,
            read = connection.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &options) => read,
        };
        match read {
            Ok(reply) => {
                if !shared.reading.swap(true, Ordering::Relaxed) {
                    tracing::info!("realtime: reading the Redis fan-out stream");
                }
                for key in reply.map(|reply| reply.keys).unwrap_or_default() {
                    for entry in key.ids {
                        deliver_entry(&hub, &entry, &shared.instance);
                        last_id = entry.id;
                    }
                }
            }
            Err(error) => {
                if shared.reading.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "realtime: reading the Redis fan-out stream failed; retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(PROBE_INTERVAL) => {}
                }
            }
        }
    }
}

/// Delivers one stream entry `{r: "user:epoch:seq,…", b: body, o?: origin}`; a malformed one is
/// logged. An entry whose origin is this instance was delivered to its sockets already: it only
/// goes into the replay rings.
fn deliver_entry(hub: &Hub, entry: &redis::streams::StreamId, instance: &str) {
    let delivered_here = entry
        .get::<String>("o")
        .is_some_and(|origin| origin == instance);
    let (Some(recipients), Some(body)) = (entry.get::<String>("r"), entry.get::<String>("b"))
    else {
        tracing::warn!(id = %entry.id, "realtime: malformed fan-out stream entry skipped");
        return;
    };
    for recipient in recipients.split(',') {
        let mut fields = recipient.split(':');
        let parsed = (|| {
            let user = Uuid::parse_str(fields.next()?).ok()?;
            let epoch = fields.next()?.parse::<u64>().ok()?;
            let seq = fields.next()?.parse::<u64>().ok()?;
            Some((user, epoch, seq))
        })();
        match parsed {
            Some((user, epoch, seq)) if delivered_here => {
                hub.record_numbered(user, epoch, seq, &body);
            }
            Some((user, epoch, seq)) => {
                hub.deliver_numbered(user, epoch, seq, &body);
            }
            None => {
                tracing::warn!(id = %entry.id, recipient, "realtime: malformed fan-out recipient skipped");
            }
        }
    }
}

/// Now in Unix milliseconds (0 if the clock is before 1970).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The pusher's [`Acknowledgements`](crate::push::Acknowledgements) with several instances: an
/// offer counts as acknowledged when a socket on this instance acknowledged it, or when a socket
/// on any instance acknowledged its `seq` in the shared numbering (recorded in Redis by
/// `ack.lua`, in the user's numbering hash, so it lives as long as the numbering does). When
/// Redis does not answer, only this instance's acknowledgements count (a push too many rather
/// than an offer missed).
#[derive(Clone, Debug)]
pub struct SharedAcknowledgements {
    hub: Hub,
    bus: RedisBus,
}

impl SharedAcknowledgements {
    /// Acknowledgements seen by `hub` here and, through `bus`, on every instance.
    pub fn new(hub: Hub, bus: RedisBus) -> Self {
        Self { hub, bus }
    }
}

impl crate::push::Acknowledgements for SharedAcknowledgements {
    fn acknowledged(
        &self,
        user: Uuid,
        message: &serde_json::Value,
    ) -> crate::ports::BoxFuture<'_, bool> {
        let message = message.clone();
        Box::pin(async move {
            if self.hub.acknowledged(user, &message) {
                return true;
            }
            let Some((epoch, seq)) = self.hub.numbered(user, &message) else {
                return false;
            };
            match self.bus.acknowledged_seq(user, epoch).await {
                Ok(acked) => acked >= seq,
                Err(error) => {
                    tracing::debug!(%error, "realtime: acknowledgements of other instances unknown");
                    false
                }
            }
        })
    }
}
