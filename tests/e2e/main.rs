//! End-to-end tests of the whole platform: the real `kreki` binary as operators run it, against the
//! real PostgreSQL, spoken to over HTTP like any client. One test binary; each module is a theme.

mod fanout;
mod lms;
mod loadtest;
mod mqtt;
mod openapi;
mod process;
mod support;
mod training_to_dispatch;
