//! End-to-end tests of the whole platform: the real `kreki` binary as operators run it, against the
//! real PostgreSQL, spoken to over HTTP like any client. One test binary; each module is a theme.

mod aftercare;
mod broadcasts;
mod callback;
mod fanout;
mod instances;
mod lms;
mod loadtest;
mod mqtt;
mod mqtt_tls;
mod nik;
mod openapi;
mod operations;
mod overload;
mod privacy;
mod process;
mod responders;
mod satusehat;
mod simulate;
mod sms;
mod support;
mod traces;
mod training_to_dispatch;
mod warnings;
