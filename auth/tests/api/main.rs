//! Integration tests of KREKI ID, one test binary: every test gets its own PostgreSQL database
//! (`#[sqlx::test]`), starts the real HTTP server on `127.0.0.1:0` and checks what a caller sees —
//! status, problem `type`, the fields named, headers.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod housekeeping;
mod keys;
mod oauth_clients;
mod refresh;
mod registration;
mod roles;
mod throttling;
mod tokens;
