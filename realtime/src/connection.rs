//! One WebSocket connection, from upgrade to close: one task that writes the backlog (replay or
//! `resync`), then interleaves live frames from its bounded queue, client frames, and heartbeat
//! pings, and closes with a code that tells the client what to do next.
//!
//! Close codes the server sends:
//! - 1001 (going away): the server is shutting down; reconnect (to another instance) with
//!   `resume_after`.
//! - 1009 (message too big): the client sent more than `realtime.max_message_bytes`; an error
//!   frame saying so comes first.
//! - 4008 (too slow): the client did not read fast enough (its queue overflowed or a write took
//!   longer than `realtime.write_timeout_ms`); reconnect with `resume_after`.
//! - 4001 (token expired): the access token the socket was opened with ran out; reconnect with a
//!   fresh one and `resume_after`. So a role taken away reaches live sockets within one token
//!   lifetime.
//!
//! - 1002 / 1007: the client broke the WebSocket protocol, or sent a text frame that is not UTF-8
//!   (unreadable at the protocol level, so not answerable with an error frame).
//!
//! A peer silent for `realtime.idle_timeout_ms` (no frame, not even a pong to our pings) is dropped
//! without a close frame: it would not read one.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures_util::SinkExt;
use kreki_auth::CurrentUser;
use kreki_platform::telemetry::traces::continue_trace;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::sync::WaitForCancellationFuture;

use crate::error::RealtimeError;
use crate::frame::Outgoing;
use crate::hub::{Attachment, Cursor, Hub, SubscribeError};
use crate::ports::{BoxFuture, InboundHandler, TopicAuthorizer, inbound_timeout};
use crate::protocol::{self, ClientFrame};

/// Close code for a consumer too slow to keep up.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Reason sent with [`CLOSE_TOO_SLOW`].
pub const CLOSE_TOO_SLOW_REASON: &str = "too slow, resume with resume_after";
/// Close code for a connection whose access token expired.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Reason sent with [`CLOSE_TOKEN_EXPIRED`].
pub const CLOSE_TOKEN_EXPIRED_REASON: &str =
    "token expired, reconnect with a fresh token and resume_after";
/// Reason sent with 1001 on shutdown.
pub const CLOSE_SHUTDOWN_REASON: &str = "server shutting down, resume with resume_after";
/// Reason sent with 1009.
pub const CLOSE_TOO_BIG_REASON: &str = "message too big";

/// Most frames written with one flush.
const WRITE_BATCH: usize = 32;
/// Frames are added to a batch while it holds less than this, in bytes.
const WRITE_BATCH_BYTES: usize = 16 * 1024;

/// Longest the server waits for the client to answer its close frame.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// After a message too big, the rest of it is still unread in the socket, and closing a socket with
/// unread input resets it at once, which can destroy the error and close frames still in flight.
/// Give them this long to leave.
const TOO_BIG_LINGER: Duration = Duration::from_millis(200);

/// Everything one connection task needs.
pub(crate) struct Connection {
    /// The hub it is attached to.
    pub hub: Hub,
    /// Who is connected.
    pub user: CurrentUser,
    /// `?resume_after=` (and `?epoch=`): where the client left off.
    pub resume: Option<Cursor>,
    /// When the access token runs out: the socket closes with 4001 then.
    pub token_expires_at: Instant,
    /// Decides `subscribe` frames.
    pub authorizer: Arc<dyn TopicAuthorizer>,
    /// Gets every other client message.
    pub inbound: Arc<dyn InboundHandler>,
    /// Held for the life of the connection (`realtime.max_connections`).
    pub slot: OwnedSemaphorePermit,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The process is stopping: 1001.
    Shutdown,
    /// The client does not read fast enough: 4008.
    TooSlow,
    /// The access token expired: 4001.
    TokenExpired,
    /// The client sent a message over the limit: error frame, then 1009.
    TooBig,
    /// The client closed (its close frame is answered by tungstenite).
    PeerClosed,
    /// Nothing heard within the idle timeout.
    Dead,
    /// The client broke the WebSocket protocol (1002) or sent a text frame that is not UTF-8
    /// (1007); the stream cannot be read past that.
    Violation(u16, &'static str),
    /// The transport failed (reset, I/O error).
    Broken,
}

/// Serves `socket` until it closes.
pub(crate) async fn serve(mut socket: WebSocket, connection: Connection) {
    let user = connection.user.id.0;
    let attachment = connection
        .hub
        .attach_resuming(user, &connection.user.roles, connection.resume)
        .await;
    let id = attachment.id;
    let attached = Attached {
        hub: connection.hub.clone(),
        user,
        id,
    };
    metrics::gauge!("realtime_connections").increment(1.0);
    tracing::debug!(%user, connection = id, "WebSocket connected");
    let ending = run(&mut socket, &connection, attachment).await;
    drop(attached);
    tracing::debug!(%user, connection = id, ?ending, "WebSocket closing");
    match ending {
        Ending::Shutdown => close(&mut socket, close_code::AWAY, CLOSE_SHUTDOWN_REASON).await,
        Ending::TooSlow => {
            metrics::counter!("realtime_slow_consumer_disconnects_total").increment(1);
            tracing::info!(%user, connection = id, "slow WebSocket consumer disconnected (4008)");
            close(&mut socket, CLOSE_TOO_SLOW, CLOSE_TOO_SLOW_REASON).await;
        }
        Ending::TokenExpired => {
            close(&mut socket, CLOSE_TOKEN_EXPIRED, CLOSE_TOKEN_EXPIRED_REASON).await;
        }
        Ending::TooBig => {
            let config = connection.hub.config();
            let frame = protocol::error_frame(&RealtimeError::TooBig {
                max_bytes: config.max_message_bytes,
            });
            let write = timeout(CLOSE_HANDSHAKE_TIMEOUT, socket.send(Message::Text(frame)));
            if matches!(write.await, Ok(Ok(()))) {
                close(&mut socket, close_code::SIZE, CLOSE_TOO_BIG_REASON).await;
                tokio::time::sleep(TOO_BIG_LINGER).await;
            }
        }
        Ending::PeerClosed => {
            // Receiving again sends tungstenite's answer to the client's close frame.
            drop(timeout(CLOSE_HANDSHAKE_TIMEOUT, socket.recv()).await);
        }
        Ending::Violation(code, reason) => close(&mut socket, code, reason).await,
        Ending::Dead | Ending::Broken => {}
    }
    drop(connection.slot);
}

/// Detaches the connection from its session and counts it out, however the task ends (even by a
/// panic in a port).
struct Attached {
    hub: Hub,
    user: uuid::Uuid,
    id: u64,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.hub.detach(self.user, self.id);
        metrics::gauge!("realtime_connections").decrement(1.0);
    }
}

async fn run(socket: &mut WebSocket, connection: &Connection, attachment: Attachment) -> Ending {
    match pump(socket, connection, attachment).await {
        Err(ending) => ending,
        Ok(never) => match never {},
    }
}

/// Runs the connection until it must end; the error is why.
async fn pump(
    socket: &mut WebSocket,
    connection: &Connection,
    attachment: Attachment,
) -> Result<Infallible, Ending> {
    let Attachment {
        backlog,
        mut outbound,
        kicked,
        ..
    } = attachment;
    let hub = &connection.hub;
    let config = hub.config();
    let write_timeout = Duration::from_millis(config.write_timeout_ms);
    let idle_timeout = Duration::from_millis(config.idle_timeout_ms);
    let ping_interval = Duration::from_millis(config.ping_interval_ms);
    let sent = metrics::counter!("realtime_messages_sent_total");
    // Made once: a cancellation future registers with its token when first polled, and every
    // socket shares the shutdown token.
    let shutdown = hub.shutdown().cancelled();
    let kicked = kicked.cancelled();
    tokio::pin!(shutdown, kicked);

    // The backlog in batches, each with its own `write_timeout`, as live frames.
    let mut backlog = backlog.into_iter().peekable();
    while backlog.peek().is_some() {
        let mut bytes = 0;
        let mut frames = Vec::new();
        while frames.len() < WRITE_BATCH
            && bytes < WRITE_BATCH_BYTES
            && let Some(frame) = backlog.next()
        {
            let text = frame.encode();
            bytes += text.len();
            frames.push(Message::Text(text));
        }
        let written = write_all(socket, frames.into_iter(), write_timeout, &mut shutdown).await?;
        sent.increment(written);
    }

    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let token_expiry = tokio::time::sleep_until(connection.token_expires_at);
    tokio::pin!(token_expiry);
    // A client message being handled (subscribe, or one for the inbound handler). While it runs
    // the socket is not read, which slows a chatty client down, but live frames keep flowing: a
    // slow location update never delays an offer.
    let mut handling: Option<BoxFuture<'_, Option<Utf8Bytes>>> = None;
    loop {
        // In this order: stopping first, then live frames, then the client.
        tokio::select! {
            biased;
            () = &mut shutdown => return Err(Ending::Shutdown),
            () = &mut kicked => return Err(Ending::TooSlow),
            () = &mut token_expiry => return Err(Ending::TokenExpired),
            frame = outbound.recv() => {
                // The hub drops the sender only when it kicks the connection.
                let Some(frame) = frame else { return Err(Ending::TooSlow) };
                // What is queued already goes out with it, in one flush (within a bound, so a
                // batch never fills the write buffer on its own).
                let mut traced = Vec::new();
                let mut batched = frame.encode();
                let mut bytes = batched.len();
                write_span(&frame, &mut traced);
                let mut frames = vec![Message::Text(batched)];
                while frames.len() < WRITE_BATCH
                    && bytes < WRITE_BATCH_BYTES
                    && let Ok(frame) = outbound.try_recv()
                {
                    batched = frame.encode();
                    bytes += batched.len();
                    write_span(&frame, &mut traced);
                    frames.push(Message::Text(batched));
                }
                let frames = frames.into_iter();
                let written = write_all(socket, frames, write_timeout, &mut shutdown).await?;
                // The spans of traced frames end once their bytes are flushed.
                drop(traced);
                sent.increment(written);
            }
            reply = poll_handling(&mut handling), if handling.is_some() => {
                handling = None;
                last_heard = Instant::now();
                if let Some(reply) = reply {
                    let reply = std::iter::once(Message::Text(reply));
                    write_all(socket, reply, write_timeout, &mut shutdown).await?;
                }
            }
            incoming = socket.recv(), if handling.is_none() => {
                last_heard = Instant::now();
                let reply = match incoming {
                    None => return Err(Ending::PeerClosed),
                    Some(Err(error)) => return Err(transport_failure(error)),
                    Some(Ok(Message::Close(_))) => return Err(Ending::PeerClosed),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Binary(_))) => {
                        Some(protocol::error_frame(&RealtimeError::Binary))
                    }
                    Some(Ok(Message::Text(text))) => match protocol::parse_client_frame(text.as_str()) {
                        Err(error) => Some(protocol::error_frame(&error)),
                        Ok(ClientFrame::Ping) => Some(protocol::pong()),
                        Ok(ClientFrame::Ack { seq, epoch }) => {
                            hub.ack(connection.user.id.0, epoch, seq);
                            None
                        }
                        Ok(frame) => {
                            handling = Some(Box::pin(handle(connection, frame)));
                            None
                        }
                    },
                };
                if let Some(reply) = reply {
                    let reply = std::iter::once(Message::Text(reply));
                    write_all(socket, reply, write_timeout, &mut shutdown).await?;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= idle_timeout {
                    return Err(Ending::Dead);
                }
                let ping = std::iter::once(Message::Ping(Bytes::new()));
                write_all(socket, ping, write_timeout, &mut shutdown).await?;
            }
        }
    }
}

/// Waits for the message being handled; pending forever when there is none (its `select!`
/// branch is disabled then anyway).
async fn poll_handling(
    handling: &mut Option<BoxFuture<'_, Option<Utf8Bytes>>>,
) -> Option<Utf8Bytes> {
    match handling {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Writes `messages` and flushes once, giving up when that takes longer than `write_timeout`
/// (the client is too slow) or the server shuts down meanwhile. Returns how many were written.
/// Most writes complete at once: the timer and the shutdown are only looked at when one does not.
async fn write_all(
    socket: &mut WebSocket,
    messages: impl Iterator<Item = Message>,
    write_timeout: Duration,
    shutdown: &mut Pin<&mut WaitForCancellationFuture<'_>>,
) -> Result<u64, Ending> {
    let writing = async {
        let mut written = 0;
        for message in messages {
            socket.feed(message).await?;
            written += 1;
        }
        socket.flush().await?;
        Ok::<_, axum::Error>(written)
    };
    tokio::select! {
        biased;
        written = timeout(write_timeout, writing) => match written {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(error)) => Err(write_failure(error)),
            Err(_) => Err(Ending::TooSlow),
        },
        () = shutdown.as_mut() => Err(Ending::Shutdown),
    }
}

/// A full write buffer means the client does not read fast enough; anything else is a broken
/// transport.
fn write_failure(error: axum::Error) -> Ending {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::WriteBufferFull(_)) => Ending::TooSlow,
        _ => {
            tracing::debug!(error = %inner, "WebSocket write failed");
            Ending::Broken
        }
    }
}

/// What a failed read means: a message too big (1009), a protocol violation (1002/1007), or a
/// broken transport.
fn transport_failure(error: axum::Error) -> Ending {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Ending::TooBig,
        Some(tungstenite::Error::Utf8(_)) => {
            Ending::Violation(close_code::INVALID, "text frames must be UTF-8")
        }
        Some(tungstenite::Error::Protocol(_)) => {
            Ending::Violation(close_code::PROTOCOL, "WebSocket protocol error")
        }
        _ => {
            tracing::debug!(error = %inner, "WebSocket transport failed");
            Ending::Broken
        }
    }
}

/// Acts on a client frame (the ports get `realtime.inbound_timeout_ms`); returns the frame to
/// answer with, if any.
async fn handle(connection: &Connection, frame: ClientFrame) -> Option<Utf8Bytes> {
    let limit = Duration::from_millis(connection.hub.config().inbound_timeout_ms);
    let user = &connection.user;
    let result = match frame {
        ClientFrame::Ping => return Some(protocol::pong()),
        ClientFrame::Ack { seq, epoch } => {
            connection.hub.ack(user.id.0, epoch, seq);
            return None;
        }
        ClientFrame::Unsubscribe(topic) => {
            connection.hub.unsubscribe(user.id.0, topic.as_str());
            return Some(protocol::topic_ack("unsubscribed", &topic));
        }
        ClientFrame::Subscribe(topic) => {
            match timeout(
                limit,
                connection.authorizer.may_subscribe(user, topic.as_str()),
            )
            .await
            {
                Err(_) => Err(RealtimeError::Inbound(inbound_timeout())),
                Ok(false) => Err(RealtimeError::TopicRefused(topic.to_string())),
                Ok(true) => match connection.hub.subscribe(user.id.0, topic.as_str()) {
                    Ok(()) => return Some(protocol::topic_ack("subscribed", &topic)),
                    Err(SubscribeError::TooMany(max)) => Err(RealtimeError::TooManyTopics(max)),
                },
            }
        }
        ClientFrame::Other(message) => {
            match timeout(limit, connection.inbound.handle(user, message)).await {
                Err(_) => Err(RealtimeError::Inbound(inbound_timeout())),
                Ok(Err(problem)) => Err(RealtimeError::Inbound(problem)),
                Ok(Ok(())) => Ok(()),
            }
        }
    };
    result.err().map(|error| protocol::error_frame(&error))
}

/// A `realtime.socket_write` span for `frame` when it carries a trace (traces are exported and
/// the work that published it was recorded), in that trace: it lasts until the batch holding the
/// frame is flushed to the socket. Untraced frames cost nothing here.
fn write_span(frame: &Outgoing, traced: &mut Vec<tracing::Span>) {
    let Outgoing::Message {
        epoch,
        seq,
        trace: Some(trace),
        ..
    } = frame
    else {
        return;
    };
    let span = tracing::info_span!("realtime.socket_write", seq, epoch);
    continue_trace(&span, Some(&**trace));
    traced.push(span);
}

/// Sends a close frame and waits (briefly) for the client's answer.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    let handshake = async {
        if socket.send(frame).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    drop(timeout(CLOSE_HANDSHAKE_TIMEOUT, handshake).await);
}
