//! Checking CAP documents against the official OASIS CAP 1.2 XSD (vendored at
//! `cap/schema/CAP-v1.2.xsd`) with `xmllint` (Debian's libxml2-utils, installed by
//! `scripts/test.sh`). For tests and CI only: nothing in `kreki serve` calls it.

use std::path::PathBuf;
use std::process::Command;

/// The vendored OASIS CAP 1.2 schema.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/CAP-v1.2.xsd")
}

/// Validates `xml` against the CAP 1.2 XSD: `Err` with xmllint's words when it is not valid.
///
/// # Errors
/// The validator's complaint, or that xmllint is missing.
pub fn validate(xml: &str) -> Result<(), String> {
    let file = std::env::temp_dir().join(format!("kreki-cap-{}.xml", uuid::Uuid::new_v4()));
    std::fs::write(&file, xml).map_err(|error| error.to_string())?;
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema_path())
        .arg(&file)
        .output();
    drop(std::fs::remove_file(&file));
    let output = output.map_err(|error| {
        format!("xmllint did not run ({error}): install libxml2-utils (scripts/test.sh does)")
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Panics with the validator's words unless `xml` is valid CAP 1.2.
///
/// # Panics
/// When it is not valid, or xmllint is missing.
pub fn assert_valid(xml: &str) {
    if let Err(why) = validate(xml) {
        panic!("not valid CAP 1.2 against the OASIS XSD:\n{why}\n{xml}");
    }
}
