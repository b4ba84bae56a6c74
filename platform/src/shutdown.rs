//! Graceful shutdown: one signal future and one cancellation token that every long-lived task owns a
//! clone of, so SIGTERM stops accepting work, lets in-flight requests finish, and stops workers.

pub use tokio_util::sync::CancellationToken;

/// Resolves on SIGTERM (what Kubernetes and systemd send) or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// A token cancelled when [`signal`] fires, for tasks that should stop with the process.
pub fn token_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        signal().await;
        child.cancel();
    });
    token
}
