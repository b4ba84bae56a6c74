//! Signing keys: JWKS publishes the current key then the previous one (kid = RFC 7638 thumbprint),
//! a rotation signs nobody out, instances sharing a key accept each other's tokens, and a service
//! running apart learns the keys from JWKS alone.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};
use kreki_auth::{AuthConfig, Caller, Role, TokenVerifier};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::common::{self, PASSWORD, TestApp, send};

/// The RFC 7638 thumbprint of an Ed25519 JWK, computed here from its members.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
        jwk["crv"].as_str().expect("crv"),
        jwk["kty"].as_str().expect("kty"),
        jwk["x"].as_str().expect("x"),
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The base64url public key of a private key PEM, as JWKS should publish it.
fn public_x(pem: &str) -> String {
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).expect("an Ed25519 key");
    URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes())
}

fn kid_in_header(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
        .expect("a kid")
}

/// A config signing with `pem`.
fn signing_with(pem: &str) -> AuthConfig {
    AuthConfig {
        signing_key_pem: Some(SecretString::from(pem.to_owned())),
        ..common::config()
    }
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let answer = send(app.request(Method::GET, "/.well-known/jwks.json")).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:#?}");
    assert!(
        answer
            .header("cache-control")
            .is_some_and(|value| value.contains("max-age")),
        "{answer:#?}"
    );
    answer.body["keys"].as_array().expect("a key list").clone()
}

#[sqlx::test(migrations = "../migrations")]
async fn rotation_publishes_both_keys_and_signs_nobody_out(pool: PgPool) {
    let old_pem = common::new_key_pem();
    let new_pem = common::new_key_pem();
    let before = common::spawn_with(pool.clone(), signing_with(&old_pem)).await;
    let phone = common::phone(1);
    before.create_user(&phone, &[]).await;
    let old_session = before.tokens(&phone, PASSWORD).await;

    // The operator hands the new instance the old key's public half only.
    let old_public = ed25519_dalek::SigningKey::from_pkcs8_pem(&old_pem)
        .expect("old key")
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("a public PEM");
    let previous_file =
        std::env::temp_dir().join(format!("kreki-auth-test-{}.pem", uuid::Uuid::now_v7()));
    std::fs::write(&previous_file, old_public).expect("the previous key is written");
    let after = common::spawn_with(
        pool,
        AuthConfig {
            previous_key_files: vec![previous_file.clone()],
            ..signing_with(&new_pem)
        },
    )
    .await;
    std::fs::remove_file(&previous_file).expect("removed");

    let keys = jwks(&after).await;
    assert_eq!(keys.len(), 2, "{keys:#?}");
    assert_eq!(keys[0]["x"], public_x(&new_pem), "current key first");
    assert_eq!(keys[1]["x"], public_x(&old_pem), "then the previous one");
    for key in &keys {
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(
            key["kid"],
            thumbprint(key),
            "kid is the thumbprint: {key:#?}"
        );
        assert!(key.get("d").is_none(), "no private part is published");
    }
    let before_keys = jwks(&before).await;
    assert_eq!(before_keys.len(), 1);
    assert_eq!(before_keys[0], keys[1]);

    // A token signed before the rotation still works, and so does its refresh token; what the
    // rotated instance issues is signed with the new key.
    assert_eq!(kid_in_header(&old_session.access), keys[1]["kid"]);
    let me = after.me(&old_session.access).await;
    assert_eq!(me.status, StatusCode::OK, "{me:#?}");
    let renewed = common::tokens_of(&after.refresh(&old_session.refresh).await);
    assert_eq!(kid_in_header(&renewed.access), keys[0]["kid"]);
    assert_eq!(after.me(&renewed.access).await.status, StatusCode::OK);
    // An instance still on the old key alone does not know the new one.
    let stale = before.me(&renewed.access).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{stale:#?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn instances_sharing_a_key_accept_each_others_tokens(pool: PgPool) {
    let pem = common::new_key_pem();
    let one = common::spawn_with(pool.clone(), signing_with(&pem)).await;
    let two = common::spawn_with(pool, signing_with(&pem)).await;
    assert_eq!(jwks(&one).await, jwks(&two).await, "same key, same kid");
    let phone = common::phone(1);
    one.create_user(&phone, &[Role::Volunteer]).await;

    let from_one = one.tokens(&phone, PASSWORD).await;
    let from_two = two.tokens(&phone, PASSWORD).await;
    for (app, token) in [(&two, &from_one.access), (&one, &from_two.access)] {
        let me = app.me(token).await;
        assert_eq!(me.status, StatusCode::OK, "{me:#?}");
        assert_eq!(
            me.body["roles"],
            serde_json::json!(["citizen", "volunteer"])
        );
    }
    // Refresh tokens live in the shared database: either instance rotates them, and re-use is
    // caught across instances.
    let rotated = common::tokens_of(&two.refresh(&from_one.refresh).await);
    assert_eq!(one.me(&rotated.access).await.status, StatusCode::OK);
    one.refresh(&from_one.refresh)
        .await
        .assert_problem(401, "refresh-token-reused");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_service_apart_verifies_with_the_jwks_url(pool: PgPool) {
    let app = common::spawn(pool).await;
    let phone = common::phone(1);
    let id = app.create_user(&phone, &[Role::Coordinator]).await;
    let tokens = app.tokens(&phone, PASSWORD).await;

    let verifier = TokenVerifier::with_jwks_url(
        app.config.issuer.clone(),
        format!("{}/.well-known/jwks.json", app.base),
        &[],
    );
    match Caller::from_token(&verifier, &tokens.access).await {
        Ok(Caller::User(user)) => {
            assert_eq!(user.id, id);
            assert!(user.require(Role::Coordinator).is_ok());
            assert!(user.require(Role::Admin).is_err());
        }
        other => panic!("a person, verified with the fetched keys: {other:?}"),
    }
    // A token from a key KREKI ID never published stays refused.
    let stranger = common::spawn(app.pool.clone()).await;
    let foreign = stranger.tokens(&phone, PASSWORD).await;
    assert!(verifier.verify(&foreign.access).await.is_err());
    assert!(verifier.verify(&tokens.access).await.is_ok());
}
