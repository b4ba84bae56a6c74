use super::*;

const NIK: &str = "3171098765432101";

fn nik() -> Nik {
    Nik::parse(NIK).expect("valid")
}

fn keys(current: &str) -> Pii {
    Pii::from_raw(current, &[("k1", [1; 32]), ("k2", [2; 32])], [9; 32])
}

#[test]
fn sealing_round_trips_with_a_fresh_nonce_and_no_digits() {
    let pii = keys("k1");
    let (a, b) = (pii.seal(&nik()), pii.seal(&nik()));
    assert_ne!(a, b, "a fresh nonce per value");
    assert!(a.as_str().starts_with("v1:k1:"), "{}", a.as_str());
    assert!(!a.as_str().contains(&NIK[4..12]));
    assert_eq!(pii.open(&a), Ok(nik()));
    assert_eq!(pii.open_str(b.as_str()), Ok(nik()));
    assert_eq!(format!("{a:?}"), "SealedNik(kid=k1)");
}

#[test]
fn tampering_is_an_error_not_a_panic() {
    let pii = keys("k1");
    let sealed = pii.seal(&nik());
    let text = sealed.as_str().to_owned();
    // One flipped character anywhere in the body.
    for index in "v1:k1:".len()..text.len() {
        let mut bytes = text.clone().into_bytes();
        bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).expect("ascii");
        if changed == text {
            continue;
        }
        assert!(
            matches!(pii.open_str(&changed), Err(PiiError::Tampered { .. })),
            "{index}"
        );
    }
    // The same body under the other key id: the key id is authenticated too.
    let moved = text.replacen("v1:k1:", "v1:k2:", 1);
    assert_eq!(
        pii.open_str(&moved),
        Err(PiiError::Tampered { kid: "k2".into() })
    );
    assert_eq!(
        pii.open_str(&text.replacen("v1:k1:", "v1:k9:", 1)),
        Err(PiiError::UnknownKey { kid: "k9".into() })
    );
    for garbage in [
        "",
        NIK,
        "v1:",
        "v1:k1:",
        "v1:K1:abc",
        "v2:k1:abc",
        "v1:k1:%%%",
        "v1:k1:AA",
    ] {
        assert!(pii.open_str(garbage).is_err(), "{garbage}");
    }
    let message = pii.open_str(&moved).expect_err("tampered").to_string();
    assert!(message.contains("tampered"), "{message}");
}

#[test]
fn rotation_reads_old_values_and_reseals_them_under_the_current_key() {
    let old = keys("k1");
    let new = keys("k2");
    let sealed = old.seal(&nik());
    assert!(!new.is_current(sealed.as_str()));
    assert_eq!(new.open(&sealed), Ok(nik()), "old keys still read");
    let (resealed, plain) = new
        .reseal(sealed.as_str())
        .expect("readable")
        .expect("not current");
    assert_eq!(resealed.kid(), "k2");
    assert_eq!(plain, nik());
    assert_eq!(new.reseal(resealed.as_str()), Ok(None), "current stays");
    // Plaintext rows from before encryption are sealed too.
    let (from_plain, _) = new.reseal(NIK).expect("a NIK").expect("sealed");
    assert_eq!(new.open(&from_plain), Ok(nik()));
    assert_eq!(new.reseal("not a nik"), Err(PiiError::Malformed));
}

#[test]
fn the_search_hash_is_keyed_and_stable() {
    let pii = keys("k1");
    assert_eq!(
        pii.hash(&nik()),
        keys("k2").hash(&nik()),
        "independent of the sealing key"
    );
    let other = Pii::from_raw("k1", &[("k1", [1; 32])], [8; 32]);
    assert_ne!(
        pii.hash(&nik()),
        other.hash(&nik()),
        "depends on the search key"
    );
    let digest: [u8; 32] = Sha256::digest(NIK.as_bytes()).into();
    assert_ne!(pii.hash(&nik()).as_bytes(), digest, "not a bare SHA-256");
}

#[test]
fn config_is_checked_and_development_keys_are_marked() {
    assert!(
        Pii::from_config(&PiiConfig::default())
            .expect("dev")
            .is_dev()
    );
    let key = generate_key();
    let mut config = PiiConfig {
        current_key: Some("k2026".into()),
        search_key: Some(generate_key().into()),
        ..PiiConfig::default()
    };
    config.keys.insert("k2026".into(), key.clone().into());
    let pii = Pii::from_config(&config).expect("valid");
    assert!(!pii.is_dev());
    assert_eq!(pii.seal(&nik()).kid(), "k2026");

    config.current_key = Some("k2027".into());
    config
        .keys
        .insert("Bad:Id".into(), "short".to_owned().into());
    let problems = config.validate().join("\n");
    assert!(problems.contains("pii.current_key"), "{problems}");
    assert!(problems.contains("pii.keys.Bad:Id"), "{problems}");
    assert!(!problems.contains(&key), "{problems}");

    let required = PiiConfig {
        require_keys: true,
        ..PiiConfig::default()
    };
    assert!(
        required.validate().is_empty(),
        "checked where the keys are used"
    );
    assert!(
        Pii::from_config(&required)
            .expect_err("refused")
            .contains("pii.require_keys")
    );
    assert!(
        !format!("{config:?}").contains(&key),
        "secrets do not print"
    );
}
