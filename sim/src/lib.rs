//! KREKI's synthetic users, acting on a running platform through its public HTTP and WebSocket
//! API as the apps do. Kept out of the `kreki` binary's crate so the hot path's code and the code
//! that measures it change apart; the binary's `kreki loadtest`, `kreki simulate` and `kreki demo`
//! only parse flags and call in here.
//!
//! - [`client`]: the one HTTP + WebSocket client both use: calls with a bearer token and an
//!   optional `Idempotency-Key`, `/readyz`, `/v1/ws`, and signed-in sessions that renew their token.
//! - [`loadtest`]: the end-to-end load generator of the dispatch hot path (`steady`, `surge`,
//!   `throughput`), with its correctness checks and report.
//! - [`simulate`]: simulated citizens and moving volunteers for demos and drills.

pub mod client;
pub mod loadtest;
pub mod simulate;
