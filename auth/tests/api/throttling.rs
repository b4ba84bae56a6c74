//! Login throttling: guessing is slowed per account and per address with a clear 429 and
//! `Retry-After`, while the person themself keeps signing in from where they always do, and no lock
//! lasts longer than `auth.account_lock_max_s`.

use std::time::Duration;

use kreki_auth::AuthConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{self, Answer, PASSWORD, send};

const HOME: &str = "10.1.1.1";
const ATTACKER: &str = "203.0.113.7";
const ELSEWHERE: &str = "198.51.100.9";

/// Asserts a 429 problem and returns its `Retry-After`, in seconds.
#[track_caller]
fn retry_after_s(answer: &Answer) -> u64 {
    answer.assert_problem(429, "too-many-logins");
    answer
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in whole seconds: {answer:#?}"))
}

#[sqlx::test(migrations = "../migrations")]
async fn account_lock_spares_addresses_it_signed_in_from(pool: PgPool) {
    // Locks long enough that a slow, busy machine cannot see one end mid-test.
    let config = AuthConfig {
        account_lock_base_s: 30,
        account_lock_max_s: 60,
        ..common::config()
    };
    let app = common::spawn_with(pool, config).await;
    let max = app.config.account_max_failures;
    let phone = common::phone(1);
    app.create_user(&phone, &[]).await;
    let home = app.login_from(HOME, &phone, PASSWORD).await;
    assert_eq!(home.status, StatusCode::OK, "{home:#?}");

    // Failures count against the account whatever spelling of its number is typed.
    let spellings = ["081200000001", "+62 812 0000 0001", "6281200000001"];
    for attempt in 0..max {
        let login = spellings[attempt as usize % spellings.len()];
        let answer = app.login_from(ATTACKER, login, "tebak-tebakan").await;
        answer.assert_problem(401, "invalid-credentials");
    }
    // Now even the right password waits, from this or any other new address...
    let locked = app.login_from(ATTACKER, &phone, PASSWORD).await;
    let wait_s = retry_after_s(&locked);
    assert!(
        (1..=app.config.account_lock_base_s).contains(&wait_s),
        "first lock is the base lock: {locked:#?}"
    );
    retry_after_s(&app.login_from(ELSEWHERE, &phone, PASSWORD).await);
    // ...but not from home.
    let home = app.login_from(HOME, &phone, PASSWORD).await;
    assert_eq!(home.status, StatusCode::OK, "{home:#?}");

    // A login that is no account is throttled alike, so the 429 tells nobody which logins exist.
    for _ in 0..max {
        let answer = app.login_from(ATTACKER, "081299999999", PASSWORD).await;
        answer.assert_problem(401, "invalid-credentials");
    }
    retry_after_s(&app.login_from(ATTACKER, "081299999999", PASSWORD).await);
}

#[sqlx::test(migrations = "../migrations")]
async fn account_lock_doubles_but_never_exceeds_account_lock_max_s(pool: PgPool) {
    let app = common::spawn(pool).await;
    let config = &app.config;
    assert!(
        config.account_lock_base_s * 2 > config.account_lock_max_s,
        "the test config makes the second lock hit the cap"
    );
    let phone = common::phone(1);
    app.create_user(&phone, &[]).await;
    for _ in 0..config.account_max_failures {
        let answer = app.login_from(ATTACKER, &phone, "tebak-tebakan").await;
        answer.assert_problem(401, "invalid-credentials");
    }
    let first_s = retry_after_s(&app.login_from(ATTACKER, &phone, "tebak-tebakan").await);
    assert!(first_s <= config.account_lock_base_s, "{first_s}");
    tokio::time::sleep(Duration::from_secs(first_s)).await;

    // One more failure after the lock: the next lock would be twice the base, but is capped.
    let answer = app.login_from(ATTACKER, &phone, "tebak-tebakan").await;
    answer.assert_problem(401, "invalid-credentials");
    let second_s = retry_after_s(&app.login_from(ATTACKER, &phone, PASSWORD).await);
    assert!(
        second_s >= first_s && second_s <= config.account_lock_max_s,
        "first lock {first_s} s, second {second_s} s, cap {} s",
        config.account_lock_max_s
    );
    tokio::time::sleep(Duration::from_secs(second_s)).await;
    let person = app.login_from(ATTACKER, &phone, PASSWORD).await;
    assert_eq!(person.status, StatusCode::OK, "the lock ended: {person:#?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn one_address_failing_across_accounts_must_wait(pool: PgPool) {
    let config = AuthConfig {
        ip_max_failures: 3,
        account_max_failures: 10,
        ..common::config()
    };
    let app = common::spawn_with(pool, config).await;
    let target = common::phone(1);
    app.create_user(&target, &[]).await;
    for n in 2..5 {
        let answer = app
            .login_from(ATTACKER, &common::phone(n), "tebak-tebakan")
            .await;
        answer.assert_problem(401, "invalid-credentials");
    }
    let blocked = app.login_from(ATTACKER, &target, PASSWORD).await;
    let wait_s = retry_after_s(&blocked);
    assert!(
        wait_s <= app.config.throttle_window_s + 1,
        "an address waits for the end of its counting window: {blocked:#?}"
    );
    let elsewhere = app.login_from(ELSEWHERE, &target, PASSWORD).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{elsewhere:#?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_guesses_get_no_more_tries_than_one_at_a_time(pool: PgPool) {
    let config = AuthConfig {
        ip_max_failures: 1000,
        account_lock_base_s: 30,
        account_lock_max_s: 60,
        ..common::config()
    };
    let app = common::spawn_with(pool, config).await;
    let phone = common::phone(1);
    app.create_user(&phone, &[]).await;
    let mut guesses = tokio::task::JoinSet::new();
    for n in 0..16 {
        let request = app
            .request(Method::POST, "/v1/auth/login")
            .header("x-forwarded-for", ATTACKER)
            .json(&json!({"login": phone, "password": format!("tebakan-ke-{n}")}));
        guesses.spawn(send(request));
    }
    let answers = guesses.join_all().await;
    let checked = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::UNAUTHORIZED)
        .count();
    for answer in &answers {
        if answer.status != StatusCode::UNAUTHORIZED {
            retry_after_s(answer);
        }
    }
    assert!(
        checked <= app.config.account_max_failures as usize,
        "{checked} of 16 concurrent guesses had their password checked; the limit is {}",
        app.config.account_max_failures
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_forged_forwarded_for_does_not_dodge_the_address_limit(pool: PgPool) {
    let config = AuthConfig {
        trust_forwarded_for: false,
        ip_max_failures: 3,
        account_max_failures: 10,
        ..common::config()
    };
    let app = common::spawn_with(pool, config).await;
    let target = common::phone(1);
    app.create_user(&target, &[]).await;
    for n in 2..5 {
        let spoofed = format!("198.51.100.{n}");
        let answer = app
            .login_from(&spoofed, &common::phone(n), "tebak-tebakan")
            .await;
        answer.assert_problem(401, "invalid-credentials");
    }
    // Without a trusted proxy the header is ignored: every attempt came from this socket's address.
    let blocked = app.login_from(ELSEWHERE, &target, PASSWORD).await;
    retry_after_s(&blocked);
}
