//! `kreki mqtt sync-credentials`: writes Mosquitto's `password_file` and `acl_file` from the
//! registry (live devices only) plus KREKI's own service account, atomically (a temporary file
//! renamed over the old one), so the broker never reads half a file. Send Mosquitto `SIGHUP`
//! afterwards to reload them (`deploy/mosquitto/sync-credentials.sh` does both).

use std::path::Path;

use sqlx::PgPool;

use super::credentials::{self, ServiceAccount};
use super::store;

/// What one sync wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Live devices written.
    pub devices: usize,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The registry could not be read.
    #[error("reading the device registry: {0}")]
    Database(#[from] sqlx::Error),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Writes both files. `service_password` is the consumer's `mqtt.password`; it is hashed afresh on
/// every sync (the broker only ever sees the hash).
///
/// # Errors
/// [`SyncError`] naming the file or the database; an old file stays as it was.
pub async fn sync_credentials(
    pool: &PgPool,
    service_username: &str,
    service_password: &str,
    password_file: &Path,
    acl_file: &Path,
) -> Result<SyncReport, SyncError> {
    let devices = store::broker_devices(pool).await?;
    let service = ServiceAccount {
        username: service_username.to_owned(),
        credentials_hash: credentials::mosquitto_hash(service_password),
    };
    write_atomically(
        password_file,
        &credentials::password_file(&service, &devices),
    )?;
    write_atomically(acl_file, &credentials::acl_file(&service, &devices))?;
    Ok(SyncReport {
        devices: devices.len(),
    })
}

fn write_atomically(path: &Path, contents: &str) -> Result<(), SyncError> {
    let io = |source| SyncError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    std::fs::write(&temporary, contents).map_err(io)?;
    // The password file holds hashes only, but there is no reason for others to read it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o640)).map_err(io)?;
    }
    std::fs::rename(&temporary, path).map_err(io)
}
