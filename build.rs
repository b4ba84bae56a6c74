//! `sqlx::migrate!` (src/app.rs) embeds `migrations/` at compile time, and cargo does not know it
//! reads that folder: without this, a migration added to a checkout already built would be left
//! out of the binary until something else made it rebuild.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
