//! Integration tests of KREKI ID, one test binary: every test gets its own PostgreSQL database
//! (`#[sqlx::test]`), starts the real HTTP server on `127.0.0.1:0` and checks what a caller sees —
//! status, problem `type`, the fields named, headers.
//!
//! Run with `cargo nextest run -p kreki-auth` (PostgreSQL with PostGIS on 127.0.0.1:5432, see
//! `deploy/local-services.sh`; `DATABASE_URL` comes from `.cargo/config.toml`).

#[path = "../common/mod.rs"]
mod common;

mod admin_console;
mod bad_input;
mod housekeeping;
mod keys;
mod oauth_clients;
mod phone;
mod privacy;
mod refresh;
mod registration;
mod roles;
mod throttling;
mod tokens;
