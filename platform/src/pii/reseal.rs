//! The reseal batch: brings every stored NIK of one column under the current key (plaintext rows
//! from before encryption, and rows sealed under a retired key), and every search hash beside it
//! under the newest search key (from the NIK where it is kept, else by wrapping the stored hash:
//! [`super::search`]), a bounded batch per statement.
//!
//! Each service names its own columns as [`ResealTarget`]s (no crate touches another's tables);
//! `kreki pii reseal` and the start of `kreki serve` run them. Rows are read without locks and
//! written back with a compare-and-set on the old value, so a row changed meanwhile is simply left
//! for the next run, and two instances running it at once do no harm.

use sqlx::PgPool;
use uuid::Uuid;

use super::{FINGERPRINT_BYTES, Pii, PiiError};

/// One column holding NIKs.
#[derive(Debug, Clone, Copy)]
pub struct ResealTarget {
    /// `schema.table`.
    pub table: &'static str,
    /// Its uuid primary key.
    pub key: &'static str,
    /// The column of sealed NIKs.
    pub column: &'static str,
    /// A column of the keyed search hash to fill where it is missing, if the table has one.
    pub hash_column: Option<&'static str>,
}

/// What one run did to one column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealCount {
    /// Rows written under the current key.
    pub resealed: u64,
    /// Rows these keys cannot read (unknown key id, tampered, not a NIK, a search hash of unknown
    /// keys); left as they are.
    pub unreadable: u64,
    /// Search hashes wrapped with the newest search key without their NIK.
    pub rehashed: u64,
}

/// Reseals every row of `target` not under the current key, `batch` rows per statement.
///
/// # Errors
/// Database failures (rows already written stay written).
pub async fn reseal(
    pool: &PgPool,
    pii: &Pii,
    target: ResealTarget,
    batch: u32,
) -> Result<ResealCount, sqlx::Error> {
    let ResealTarget {
        table,
        key,
        column,
        hash_column,
    } = target;
    // A hash is stale when missing, or not starting with the newest search key's fingerprint.
    let missing_hash = hash_column.map_or(String::new(), |hash| {
        format!(" OR {hash} IS NULL OR substring({hash} FROM 1 FOR {FINGERPRINT_BYTES}) <> $4")
    });
    let select = format!(
        "SELECT {key}, {column} FROM {table}
         WHERE {key} > $1 AND {column} IS NOT NULL AND ({column} NOT LIKE $2{missing_hash})
         ORDER BY {key} LIMIT $3"
    );
    let set_hash = hash_column.map_or(String::new(), |hash| format!(", {hash} = v.hash"));
    let update = format!(
        "UPDATE {table} AS t SET {column} = v.sealed{set_hash}
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[]) AS v(key, old, sealed, hash)
         WHERE t.{key} = v.key AND t.{column} = v.old"
    );
    // Identifiers come from the `&'static str`s of the services' `NIK_COLUMNS`, never from input.
    let current = format!("v1:{}:%", pii.current_kid());
    let mut count = ResealCount::default();
    let mut after = Uuid::nil();
    loop {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
            .bind(after)
            .bind(&current)
            .bind(i64::from(batch));
        if hash_column.is_some() {
            query = query.bind(pii.search_fingerprint().to_vec());
        }
        let rows: Vec<(Uuid, String)> = query.fetch_all(pool).await?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        after = *last;
        let (mut keys, mut olds, mut sealeds, mut hashes) = (vec![], vec![], vec![], vec![]);
        for (row_key, stored) in rows {
            let resealed = match pii.reseal(&stored) {
                Ok(Some((sealed, nik))) => Some((sealed.as_str().to_owned(), nik)),
                // Sealed under the current key already; only its hash was missing or stale.
                Ok(None) => pii.open_str(&stored).ok().map(|nik| (stored.clone(), nik)),
                Err(error) => {
                    log_unreadable(table, row_key, &error);
                    None
                }
            };
            let Some((sealed, nik)) = resealed else {
                count.unreadable += 1;
                continue;
            };
            hashes.push(pii.hash(&nik).as_bytes().to_vec());
            keys.push(row_key);
            olds.push(stored);
            sealeds.push(sealed);
        }
        let written = sqlx::query(sqlx::AssertSqlSafe(update.clone()))
            .bind(&keys)
            .bind(&olds)
            .bind(&sealeds)
            .bind(&hashes)
            .execute(pool)
            .await?
            .rows_affected();
        count.resealed += written;
        metrics::counter!("kreki_pii_resealed_total", "table" => table).increment(written);
    }
    if let Some(hash) = hash_column {
        count.rehashed = rewrap(pool, pii, table, key, hash, batch, &mut count.unreadable).await?;
    }
    if count != ResealCount::default() {
        tracing::info!(
            table,
            resealed = count.resealed,
            unreadable = count.unreadable,
            rehashed = count.rehashed,
            current_key = pii.current_kid(),
            "NIKs resealed under the current key"
        );
    }
    Ok(count)
}

fn log_unreadable(table: &str, key: Uuid, error: &PiiError) {
    tracing::error!(table, key = %key, %error, "a stored NIK cannot be read; left as it is");
}

/// Wraps every search hash of `table.hash` not under the newest search key (rows whose NIK is
/// kept were re-hashed from it above; these are the others, a verified practitioner's for
/// example). Answers how many it wrapped; counts those of unknown keys in `unreadable`.
async fn rewrap(
    pool: &PgPool,
    pii: &Pii,
    table: &str,
    key: &str,
    hash: &str,
    batch: u32,
    unreadable: &mut u64,
) -> Result<u64, sqlx::Error> {
    // Identifiers come from the `&'static str`s of the services' `NIK_COLUMNS`, never from input.
    let select = format!(
        "SELECT {key}, {hash} FROM {table}
         WHERE {key} > $1 AND {hash} IS NOT NULL
           AND substring({hash} FROM 1 FOR {FINGERPRINT_BYTES}) <> $2
         ORDER BY {key} LIMIT $3"
    );
    let update = format!(
        "UPDATE {table} AS t SET {hash} = v.new
         FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS v(key, old, new)
         WHERE t.{key} = v.key AND t.{hash} = v.old"
    );
    let fingerprint = pii.search_fingerprint().to_vec();
    let mut after = Uuid::nil();
    let mut wrapped = 0;
    loop {
        let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
            .bind(after)
            .bind(&fingerprint)
            .bind(i64::from(batch))
            .fetch_all(pool)
            .await?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        after = *last;
        let (mut keys, mut olds, mut news) = (vec![], vec![], vec![]);
        for (row_key, stored) in rows {
            match pii.rewrap_hash(&stored) {
                Ok(Some(new)) => {
                    keys.push(row_key);
                    olds.push(stored);
                    news.push(new.as_bytes().to_vec());
                }
                Ok(None) => {}
                Err(error) => {
                    log_unreadable(table, row_key, &error);
                    *unreadable += 1;
                }
            }
        }
        let written = sqlx::query(sqlx::AssertSqlSafe(update.clone()))
            .bind(&keys)
            .bind(&olds)
            .bind(&news)
            .execute(pool)
            .await?
            .rows_affected();
        wrapped += written;
        metrics::counter!("kreki_pii_rehashed_total", "table" => table.to_owned())
            .increment(written);
    }
    Ok(wrapped)
}
