//! Our own MQTT seam: [`MqttTransport`] (publish, acknowledge) plus a bounded stream of
//! [`TransportEvent`]s. The consumer is written against it only; [`connect_rumqttc`] is the one
//! implementation, over rumqttc 0.25 (little maintained upstream, so it stays behind this trait and
//! can be swapped without touching the consumer).
//!
//! The driver task owns rumqttc's event loop: it reconnects with capped exponential back-off,
//! re-subscribes (QoS 1) after every CONNACK, and forwards publishes into a bounded channel. It
//! keeps polling the event loop while the consumer is behind (that is what sends PUBACKs and
//! pings): QoS 1 deliveries the consumer has no room for wait in a backlog bounded by the broker's
//! inflight window (it sends no more until it gets PUBACKs), so backpressure comes from the broker
//! not sending new ones. Only for QoS 0 deliveries, which no window bounds, does the driver stop
//! reading the socket until the consumer takes some (TCP flow control). Acknowledgements are
//! manual: a message is PUBACKed only after it was handled, so a crash before that leaves it with
//! the broker for redelivery.

use std::time::Duration;

use kreki_platform::shutdown::CancellationToken;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use super::config::MqttConfig;
use crate::ports::BoxFuture;

/// A message from the broker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its topic.
    pub topic: String,
    /// Its payload, as sent.
    pub payload: Vec<u8>,
    /// The broker says it may have been delivered before (MQTT `DUP`).
    pub redelivered: bool,
    ack: AckToken,
}

#[derive(Debug, Clone, Copy)]
struct AckToken {
    pkid: u16,
    qos: u8,
}

impl Delivery {
    /// A delivery that needs no acknowledgement (QoS 0), for consumers fed without a broker.
    pub fn unacknowledged(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            redelivered: false,
            ack: AckToken { pkid: 0, qos: 0 },
        }
    }
}

/// What the transport reports, in order.
#[derive(Debug)]
pub enum TransportEvent {
    /// (Re)connected and subscribed again: the broker acknowledged the subscriptions (sent once
    /// per connect, after its SUBACK).
    Connected,
    /// The connection broke; the transport retries on its own.
    Disconnected(String),
    /// A message to handle, then [`MqttTransport::ack`].
    Message(Delivery),
}

/// Why a publish or an acknowledgement could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("MQTT client: {0}")]
pub struct TransportError(pub String);

/// Publishing and acknowledging over one broker connection.
pub trait MqttTransport: Send + Sync + 'static {
    /// Publishes `payload` to `topic` with QoS 1 (queued; sent when connected).
    fn publish(&self, topic: String, payload: Vec<u8>)
    -> BoxFuture<'_, Result<(), TransportError>>;
    /// Acknowledges a delivery (PUBACK for QoS 1; nothing for QoS 0).
    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), TransportError>>;
}

/// How the transport connects and what it subscribes to.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id (one session per id at the broker).
    pub client_id: String,
    /// Username and password; `None` for an anonymous broker.
    pub credentials: Option<(String, String)>,
    /// Topic filters subscribed with QoS 1 after every connect.
    pub subscriptions: Vec<String>,
    /// Keep-alive, seconds.
    pub keep_alive_s: u64,
    /// Capacity of the event channel (deliveries read but not yet taken).
    pub queue: usize,
    /// Capacity of rumqttc's request channel (our publishes and PUBACKs waiting for the event
    /// loop; it allocates as it fills). It must never be full of PUBACKs while the driver waits
    /// for the consumer, or the consumer's tasks wait on the channel and the driver on them: that
    /// deadlock stalled QoS 1 consumers with every handler returned. A session owes at most
    /// 65,535 PUBACKs (one per packet id) and each message in hand publishes at most one ack to a
    /// device, so `from_config` sizes it 65,535 + `max_in_flight` + 64.
    pub request_capacity: usize,
    /// Unacknowledged QoS 1 publishes of our own at once (acks to devices).
    pub max_inflight: u16,
    /// Longest back-off between reconnects, milliseconds.
    pub reconnect_max_ms: u64,
    /// PEM certificate(s) of the authority the broker's certificate chains to: connect over
    /// TLS, checking the broker's certificate and its name (`host`). `None`: plain MQTT.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Start a fresh broker session on every connect. Off for the consumer (the broker keeps its
    /// subscriptions and queues QoS 1 messages while it is away); on for short-lived clients such
    /// as benchmarks, whose sessions would otherwise go on queueing after they left.
    pub clean_session: bool,
}

impl TransportOptions {
    /// The consumer's options from `[mqtt]`: the panic and location filters, shared through
    /// `$share/<group>/` when `shared_group` is set.
    pub fn from_config(config: &MqttConfig) -> Self {
        let filter = |f: &str| {
            if config.shared_group.is_empty() {
                f.to_owned()
            } else {
                format!("$share/{}/{f}", config.shared_group)
            }
        };
        let password = config.password.expose_secret().to_owned();
        // Checked at start-up (`MqttConfig::validate`); a file gone since is a broker the
        // consumer cannot trust, so it connects to none (the logs and `mqtt_connects_total` say).
        let tls_ca_pem = config.tls_ca_file.as_deref().map(|path| {
            super::config::read_certificate(path)
                .map(String::into_bytes)
                .unwrap_or_else(|why| {
                    tracing::error!(%why, "mqtt.tls_ca_file unusable: the consumer trusts no broker");
                    Vec::new()
                })
        });
        Self {
            host: config.host.clone(),
            port: config.port,
            client_id: config.client_id.clone(),
            credentials: Some((config.username.clone(), password)),
            subscriptions: vec![
                filter(super::topics::PANIC_FILTER),
                filter(super::topics::LOCATION_FILTER),
            ],
            keep_alive_s: config.keep_alive_s,
            queue: config.queue,
            request_capacity: MAX_UNACKED + config.max_in_flight + 64,
            max_inflight: 100,
            reconnect_max_ms: config.reconnect_max_ms,
            tls_ca_pem,
            clean_session: false,
        }
    }
}

struct Rumqttc {
    client: AsyncClient,
}

impl MqttTransport for Rumqttc {
    fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|error| TransportError(error.to_string()))
        })
    }

    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), TransportError>> {
        let token = delivery.ack;
        Box::pin(async move {
            let qos = match token.qos {
                1 => QoS::AtLeastOnce,
                2 => QoS::ExactlyOnce,
                _ => return Ok(()),
            };
            let mut publish = rumqttc::Publish::new("", qos, Vec::new());
            publish.pkid = token.pkid;
            self.client
                .ack(&publish)
                .await
                .map_err(|error| TransportError(error.to_string()))
        })
    }
}

/// Connects through rumqttc and starts the driver task (it stops at `shutdown`, disconnecting
/// cleanly). Returns the transport and its events; connection errors arrive as
/// [`TransportEvent::Disconnected`], never as a failure here.
pub fn connect_rumqttc(
    options: TransportOptions,
    shutdown: CancellationToken,
) -> (
    std::sync::Arc<dyn MqttTransport>,
    mpsc::Receiver<TransportEvent>,
    tokio::task::JoinHandle<()>,
) {
    let mut mqtt = MqttOptions::new(
        options.client_id.clone(),
        options.host.clone(),
        options.port,
    );
    mqtt.set_keep_alive(Duration::from_secs(options.keep_alive_s.max(5)))
        .set_clean_session(options.clean_session)
        .set_manual_acks(true)
        .set_inflight(options.max_inflight.max(1))
        .set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some((username, password)) = &options.credentials {
        mqtt.set_credentials(username.clone(), password.clone());
    }
    if let Some(ca) = &options.tls_ca_pem {
        mqtt.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca: ca.clone(),
                alpn: None,
                client_auth: None,
            },
        ));
    }
    let (client, eventloop) = AsyncClient::new(mqtt, options.request_capacity.max(64));
    let (events, receiver) = mpsc::channel(options.queue.max(1));
    let driver = tokio::spawn(drive(client.clone(), eventloop, options, events, shutdown));
    (std::sync::Arc::new(Rumqttc { client }), receiver, driver)
}

/// Most QoS 1/2 deliveries a session can hold unacknowledged: each needs its own packet id.
const MAX_UNACKED: usize = u16::MAX as usize;

/// One event on its way from the driver to the consumer, through the backlog.
struct Held {
    event: TransportEvent,
    /// For events no broker window bounds (QoS 0 deliveries, connection events): one of `queue`
    /// places, given back once the consumer's channel took the event.
    _place: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Hands the backlog to the consumer in order, waiting for room in its channel (the driver never
/// does). Stops when either side is gone.
async fn forward(mut backlog: mpsc::Receiver<Held>, events: mpsc::Sender<TransportEvent>) {
    while let Some(held) = backlog.recv().await {
        if events.send(held.event).await.is_err() {
            break;
        }
    }
}

async fn drive(
    client: AsyncClient,
    mut eventloop: EventLoop,
    options: TransportOptions,
    events: mpsc::Sender<TransportEvent>,
    shutdown: CancellationToken,
) {
    let initial = Duration::from_millis(100);
    let max = Duration::from_millis(options.reconnect_max_ms.max(100));
    let mut backoff = initial;
    // Between the event loop and the consumer's channel: QoS 1/2 deliveries the consumer has no
    // room for wait here, bounded by the broker's inflight window (it sends no more until it gets
    // PUBACKs; at most `MAX_UNACKED` by packet ids), so the driver goes on polling the event
    // loop, which is what sends those PUBACKs and the pings. QoS 0 deliveries and connection
    // events, which no window bounds, take one of `queue` places first: when none is free the
    // driver waits for the consumer and the socket is not read (TCP flow control). That wait
    // ends as soon as the consumer takes messages, which it always can: its PUBACKs never wait
    // for us (see `TransportOptions::request_capacity`).
    let queue = options.queue.max(1);
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(queue));
    let (backlog, held) = mpsc::channel::<Held>(MAX_UNACKED + queue);
    let forwarder = tokio::spawn(forward(held, events));
    let hold = |event: TransportEvent| {
        let backlog = backlog.clone();
        let places = places.clone();
        let shutdown = shutdown.clone();
        async move {
            let bounded = matches!(&event, TransportEvent::Message(d) if d.ack.qos > 0);
            let place = if bounded {
                None
            } else {
                tokio::select! {
                    () = shutdown.cancelled() => return Err(()),
                    place = places.acquire_owned() => Some(place.map_err(|_| ())?),
                }
            };
            let held = Held {
                event,
                _place: place,
            };
            tokio::select! {
                () = shutdown.cancelled() => Err(()),
                sent = backlog.send(held) => sent.map_err(|_| ()),
            }
        }
    };
    loop {
        // `poll` is never cancelled but at shutdown: rumqttc may have taken a request (a PUBACK)
        // off its channel and not yet written it when a cancelled `poll` is dropped.
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = initial;
                let filters = options
                    .subscriptions
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                // The request channel holds every PUBACK a session can owe and more; right after
                // a connect it is nearly empty, so this does not fail in practice; if it does,
                // the next connect retries.
                if let Err(error) = client.try_subscribe_many(filters) {
                    tracing::warn!(%error, "MQTT subscribe could not be queued");
                }
                tracing::info!(session_present = ack.session_present, "MQTT connected");
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!("the MQTT broker refused a subscription (check its ACL)");
                    metrics::counter!("mqtt_subscribe_refused_total").increment(1);
                }
                // Connected means subscribed: messages published from now on reach us.
                if hold(TransportEvent::Connected).await.is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let delivery = Delivery {
                    ack: AckToken {
                        pkid: publish.pkid,
                        qos: publish.qos as u8,
                    },
                    redelivered: publish.dup,
                    topic: publish.topic,
                    payload: Vec::from(publish.payload),
                };
                if hold(TransportEvent::Message(delivery)).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                metrics::counter!("mqtt_disconnects_total").increment(1);
                tracing::warn!(%error, retry_in_ms = backoff.as_millis(), "MQTT connection lost");
                if hold(TransportEvent::Disconnected(error.to_string()))
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
    forwarder.abort();
    // Best effort: tell the broker we leave on purpose, and let the loop send it.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
}
