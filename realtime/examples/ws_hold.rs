//! Holds N idle WebSocket connections to a hub and reports the server's memory per connection.
//!
//! ```sh
//! cargo run --release -p kreki-realtime --example ws_hold -- 10000
//! ```
//!
//! The hub runs in this process with the default `[realtime]` settings; the clients run in a child
//! process (this same program with `connect FILE`), so their memory is not counted. Each
//! connection is a different user, so the figure includes a session per user. The count is
//! bounded by the open-file limit of each process (`ulimit -n`).

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, TokenVerifier, UserId};
use kreki_realtime::{Hub, RealtimeConfig, RealtimeState};
use tokio_util::sync::CancellationToken;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, file] if mode == "connect" => connect(file).await,
        [count] => serve(count.parse()?).await,
        _ => Err("usage: ws_hold COUNT".into()),
    }
}

async fn serve(count: usize) -> Result<(), Failure> {
    let pem = kreki_auth::keys::generate_pem()?;
    let keys = Arc::new(KeyRing::new(Some(SigningKey::from_pem(&pem)?), Vec::new()));
    let verifier = TokenVerifier::with_keys("kreki".to_owned(), &keys.public_keys());
    let issuer = Issuer::new(keys, "kreki".to_owned(), Duration::from_secs(3600));
    let config = RealtimeConfig {
        max_connections: count.max(1),
        ..RealtimeConfig::default()
    };
    let shutdown = CancellationToken::new();
    let hub = Hub::new(config, shutdown.clone());
    let (router, _) =
        kreki_realtime::router(RealtimeState::new(hub.clone(), verifier)).split_for_parts();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });

    let file = std::env::temp_dir().join(format!("ws_hold-{}.txt", std::process::id()));
    let mut lines = vec![addr.to_string()];
    let roles = Roles::new([Role::Volunteer]);
    for _ in 0..count {
        lines.push(issuer.for_user(UserId::new(), &roles, "Relawan")?);
    }
    std::fs::write(&file, lines.join("\n"))?;

    let before = rss_bytes()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("connect")
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while hub.stats().connections < count {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {} of {count} connected", hub.stats().connections).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the upgrade responses and handshakes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes()?;
    let per_connection = after.saturating_sub(before) / count.max(1) as u64;
    report(&format!(
        "{count} idle connections: server RSS {} KiB -> {} KiB, {per_connection} bytes per connection",
        before / 1024,
        after / 1024
    ));
    drop(child.stdin.take());
    child.wait()?;
    std::fs::remove_file(&file)?;
    shutdown.cancel();
    Ok(())
}

async fn connect(file: &str) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)?;
    let mut lines = text.lines();
    let addr = lines.next().ok_or("empty file")?.to_owned();
    let mut sockets = Vec::new();
    for token in lines {
        let url = format!("ws://{addr}/v1/ws?access_token={token}");
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        sockets.push(socket);
    }
    // Hold them until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        drop(std::io::stdin().lock().read_line(&mut line));
    })
    .await?;
    drop(sockets);
    Ok(())
}

fn rss_bytes() -> Result<u64, Failure> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

#[expect(clippy::print_stdout, reason = "the example's result")]
fn report(line: &str) {
    println!("{line}");
    drop(std::io::stdout().flush());
}
