//! The WebSocket benchmarks of `realtime/BENCHMARKS.md` (issue 7, item 8): idle connections held
//! with the server's memory per connection, and fan-out latency across two instances sharing
//! Redis. `realtime/benches/run.sh` runs them side by side with the Node `ws` relay in
//! `realtime/benches/node-ws/`; the modes can also be run by hand:
//!
//! ```sh
//! ws_bench keygen KEY.pem                         # a signing key for the tokens
//! ws_bench serve KEY.pem [REDIS_URL PREFIX]        # a hub on 127.0.0.1; prints `listening ADDR`
//! ws_bench hold URL SERVER_PID COUNT [KEY.pem]     # COUNT idle sockets; RSS growth of SERVER_PID
//! ws_bench latency KEY.pem REDIS_URL USERS MESSAGES # publish on A (here), sockets on B (a child)
//! ws_bench relay-latency URL USERS MESSAGES        # the same through a relay (one sender socket)
//! ```
//!
//! `serve` runs until its stdin closes. Clients use a 4 KiB read buffer and connect from
//! 127.0.0.1, 127.0.0.2, … (20,000 each) so the ephemeral port range is not the limit; each
//! process is still bounded by `ulimit -n`. Every phase has a time limit.

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, TokenVerifier, UserId};
use kreki_realtime::bus::{RedisBus, RedisBusConfig};
use kreki_realtime::{Audience, Hub, RealtimeConfig, RealtimeState};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

type Failure = Box<dyn std::error::Error + Send + Sync>;
type Socket = WebSocketStream<TcpStream>;

/// Connections opened at once.
const CONNECT_BATCH: usize = 256;
/// Connections per source address.
const PER_SOURCE: usize = 20_000;
/// Longest any phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["keygen", file] => {
            std::fs::write(file, kreki_auth::keys::generate_pem()?.as_bytes())?;
            Ok(())
        }
        ["serve", key] => serve(key, None).await,
        ["serve", key, redis, prefix] => serve(key, Some((redis, prefix))).await,
        ["hold", url, pid, count] => hold(url, pid.parse()?, count.parse()?, None).await,
        ["hold", url, pid, count, key] => hold(url, pid.parse()?, count.parse()?, Some(key)).await,
        ["latency", key, redis, users, messages] => {
            latency(key, redis, users.parse()?, messages.parse()?).await
        }
        ["relay-latency", url, users, messages] => {
            relay_latency(url, users.parse()?, messages.parse()?).await
        }
        _ => Err("usage: see the comment at the top of realtime/examples/ws_bench.rs".into()),
    }
}

fn keys(key_file: &str) -> Result<Arc<KeyRing>, Failure> {
    let pem = std::fs::read_to_string(key_file)?;
    Ok(Arc::new(KeyRing::new(
        Some(SigningKey::from_pem(&pem)?),
        Vec::new(),
    )))
}

fn issuer(key_file: &str) -> Result<Issuer, Failure> {
    Ok(Issuer::new(
        keys(key_file)?,
        "kreki".to_owned(),
        Duration::from_secs(3600),
    ))
}

fn bench_config() -> RealtimeConfig {
    RealtimeConfig {
        max_connections: 1_000_000,
        ..RealtimeConfig::default()
    }
}

/// A hub serving `/v1/ws` on 127.0.0.1 (with the Redis bus when given) until stdin closes.
async fn serve(key_file: &str, redis: Option<(&str, &str)>) -> Result<(), Failure> {
    let keys = keys(key_file)?;
    let verifier = TokenVerifier::with_keys("kreki".to_owned(), &keys.public_keys());
    let shutdown = CancellationToken::new();
    let hub = match redis {
        None => Hub::new(bench_config(), shutdown.clone()),
        Some((url, prefix)) => {
            let (hub, bus) =
                RedisBus::start(bench_config(), bus_config(url, prefix), shutdown.clone())?;
            wait_connected(&bus).await?;
            hub
        }
    };
    let (router, _) = kreki_realtime::router(RealtimeState::new(hub, verifier)).split_for_parts();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // As the `kreki` binary does: frames go out at once, not after the peer's delayed ACK.
    let listener = listener.tap_io(|stream| drop(stream.set_nodelay(true)));
    tokio::spawn(async move { axum::serve(listener, router).await });
    report(&format!("listening {addr}"));
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut line)
            .is_ok_and(|read| read > 0)
        {
            line.clear();
        }
    })
    .await?;
    shutdown.cancel();
    Ok(())
}

fn bus_config(url: &str, prefix: &str) -> RedisBusConfig {
    RedisBusConfig {
        url: url.to_owned().into(),
        key_prefix: prefix.to_owned(),
        ..RedisBusConfig::default()
    }
}

async fn wait_connected(bus: &RedisBus) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bus.is_connected() {
        if Instant::now() > deadline {
            return Err("Redis bus not connected within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Opens one client socket to `url` from `source`, with a small read buffer.
async fn open(url: &str, source: IpAddr) -> Result<Socket, Failure> {
    let request = url.into_client_request()?;
    let host = request.uri().host().ok_or("no host")?.parse::<IpAddr>()?;
    let port = request.uri().port_u16().ok_or("no port")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(SocketAddr::new(host, port)).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(socket)
}

/// Opens a socket to each URL, `CONNECT_BATCH` at a time.
async fn open_all(urls: &[String]) -> Result<Vec<Socket>, Failure> {
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(urls.len());
    for (batch_number, batch) in urls.chunks(CONNECT_BATCH).enumerate() {
        let opening = batch.iter().enumerate().map(|(i, url)| {
            let n = batch_number * CONNECT_BATCH + i;
            let octet = u8::try_from(1 + n / PER_SOURCE).unwrap_or(u8::MAX);
            open(url, IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet)))
        });
        for socket in futures_util::future::join_all(opening).await {
            sockets.push(socket?);
        }
        if started.elapsed() > PHASE_LIMIT {
            return Err(format!("only {} connected in {PHASE_LIMIT:?}", sockets.len()).into());
        }
    }
    Ok(sockets)
}

/// Holds `count` idle sockets to `url` and reports the RSS growth of process `pid` per socket.
async fn hold(url: &str, pid: u32, count: usize, key_file: Option<&str>) -> Result<(), Failure> {
    let urls: Vec<String> = match key_file {
        Some(key_file) => {
            let issuer = issuer(key_file)?;
            let roles = Roles::new([Role::Volunteer]);
            (0..count)
                .map(|_| {
                    let token = issuer.for_user(UserId::new(), &roles, "Relawan")?;
                    Ok(format!("{url}?access_token={token}"))
                })
                .collect::<Result<_, Failure>>()?
        }
        None => vec![url.to_owned(); count],
    };
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let sockets = open_all(&urls).await?;
    let connect_s = started.elapsed().as_secs_f64();
    // Let the server settle (upgrade responses, first allocations).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid)?;
    let per_connection = after.saturating_sub(before) * 1024 / count.max(1) as u64;
    report(&format!(
        "hold count={count} server_rss_before_kib={before} server_rss_after_kib={after} bytes_per_connection={per_connection} connect_s={connect_s:.1}"
    ));
    drop(sockets);
    Ok(())
}

/// Publishes on instance A (this process) to `users` sockets on instance B (a child process), both
/// with the Redis bus; reports the latency from publish to each socket's receipt.
async fn latency(
    key_file: &str,
    redis: &str,
    users: usize,
    messages: usize,
) -> Result<(), Failure> {
    let prefix = format!("kreki:bench:{}:", uuid::Uuid::new_v4().simple());
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", key_file, redis, &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or("the child did not start")?
        .to_owned();
    let shutdown = CancellationToken::new();
    let (a, bus) = RedisBus::start(bench_config(), bus_config(redis, &prefix), shutdown.clone())?;
    wait_connected(&bus).await?;

    let issuer = issuer(key_file)?;
    let roles = Roles::new([Role::Volunteer]);
    let ids: Vec<UserId> = (0..users).map(|_| UserId::new()).collect();
    let urls = ids
        .iter()
        .map(|id| {
            let token = issuer.for_user(*id, &roles, "Relawan")?;
            Ok(format!("ws://{addr}/v1/ws?access_token={token}"))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let sockets = open_all(&urls).await?;
    // A socket is attached to its session shortly after its upgrade (B first asks Redis where a
    // new user's numbering is): give every one of them time to, so the warm-up reaches all.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let audience = Audience::Users(ids.iter().map(|id| id.0).collect());
    let (samples, mut received) = listen(sockets);
    // Warm-up: every socket attached and reached once before measuring.
    a.publish(audience.clone(), json!({"type": "bench", "t_us": now_us()}));
    collect(&mut received, users).await?;
    let mut latencies = Vec::with_capacity(users * messages);
    for _ in 0..messages {
        a.publish(audience.clone(), json!({"type": "bench", "t_us": now_us()}));
        latencies.extend(collect(&mut received, users).await?);
    }
    report_latency("kreki A->Redis->B", users, messages, &mut latencies);
    drop(samples);
    shutdown.cancel();
    drop(child.stdin.take());
    child.wait()?;
    Ok(())
}

/// The same measure through a relay: one more socket sends each message, the relay forwards it.
async fn relay_latency(url: &str, users: usize, messages: usize) -> Result<(), Failure> {
    let urls = vec![url.to_owned(); users];
    let sockets = open_all(&urls).await?;
    let mut sender = open(url, IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
    let (samples, mut received) = listen(sockets);
    let stamped = || Message::text(json!({"type": "bench", "t_us": now_us()}).to_string());
    sender.send(stamped()).await?;
    collect(&mut received, users).await?;
    let mut latencies = Vec::with_capacity(users * messages);
    for _ in 0..messages {
        sender.send(stamped()).await?;
        latencies.extend(collect(&mut received, users).await?);
    }
    report_latency("relay", users, messages, &mut latencies);
    drop(samples);
    Ok(())
}

/// Reads every socket; each `bench` frame's age in microseconds goes to the channel.
fn listen(sockets: Vec<Socket>) -> (Vec<tokio::task::JoinHandle<()>>, mpsc::Receiver<u64>) {
    let (sender, receiver) = mpsc::channel(65_536);
    let tasks = sockets
        .into_iter()
        .map(|mut socket| {
            let sender = sender.clone();
            tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let now = now_us();
                    let value: serde_json::Value = match serde_json::from_str(text.as_str()) {
                        Ok(value) => value,
                        Err(_) => continue,
                    };
                    if let Some(sent) = value["t_us"].as_u64()
                        && sender.send(now.saturating_sub(sent)).await.is_err()
                    {
                        break;
                    }
                }
            })
        })
        .collect();
    (tasks, receiver)
}

async fn collect(received: &mut mpsc::Receiver<u64>, count: usize) -> Result<Vec<u64>, Failure> {
    let mut samples = Vec::with_capacity(count);
    while samples.len() < count {
        match tokio::time::timeout(Duration::from_secs(10), received.recv()).await {
            Ok(Some(sample)) => samples.push(sample),
            _ => {
                return Err(
                    format!("only {} of {count} sockets got the message", samples.len()).into(),
                );
            }
        }
    }
    Ok(samples)
}

fn report_latency(what: &str, users: usize, messages: usize, latencies: &mut [u64]) {
    latencies.sort_unstable();
    let at = |quantile: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a sample far below 2^52"
        )]
        let index = ((latencies.len() as f64 - 1.0) * quantile).round() as usize;
        latencies.get(index).copied().unwrap_or(0)
    };
    report(&format!(
        "latency path={what:?} sockets={users} messages={messages} samples={} p50_us={} p99_us={} max_us={}",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or(0)
    ));
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

fn rss_kib(pid: u32) -> Result<u64, Failure> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

#[expect(clippy::print_stdout, reason = "the benchmark's result")]
fn report(line: &str) {
    println!("{line}");
    drop(std::io::stdout().flush());
}
