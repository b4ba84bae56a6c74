//! The certification table's limit, in a process of its own (the table is process-wide, so this
//! cannot share a process with tests that intern other codes).

use kreki_dispatch::matcher::{CertError, CertSet, MAX_CERT_CODES};

#[test]
fn the_65th_code_is_refused_and_known_codes_keep_working() {
    let codes: Vec<String> = (0..MAX_CERT_CODES).map(|i| format!("course_{i}")).collect();
    let all = CertSet::from_codes(&codes).unwrap_or_else(|e| panic!("64 codes fit: {e}"));
    assert_eq!(all.len(), MAX_CERT_CODES);
    assert_eq!(
        CertSet::from_codes(&["one_too_many"]),
        Err(CertError::TableFull("one_too_many".to_owned()))
    );
    // Codes already known still resolve to their bits.
    let some = CertSet::from_codes(&["course_0", "course_63"]).unwrap_or_default();
    assert_eq!(some.len(), 2);
    assert!(all.contains_all(some));
    assert_eq!(some.codes(), ["course_0", "course_63"]);
}
