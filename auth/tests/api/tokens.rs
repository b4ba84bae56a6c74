//! Access tokens a caller can forge or keep too long: expired, tampered, signed by a stranger's key,
//! `alg: none`, and HS256 "signed" with our public key. Each is a 401 problem with
//! `WWW-Authenticate`, never a way in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kreki_auth::Role;
use kreki_auth::token::{AUDIENCE, Claims, SubjectKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{self, Answer, TestApp, send};

/// Claims as KREKI ID would issue them for `sub`, valid for 15 minutes from now.
fn claims(sub: &str, roles: &[&str]) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: "kreki".to_owned(),
        sub: sub.to_owned(),
        aud: AUDIENCE.to_owned(),
        exp: now + 900,
        iat: now,
        jti: uuid::Uuid::now_v7().to_string(),
        kind: SubjectKind::User,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        name: Some("Penyusup".to_owned()),
        trust: None,
        scope: None,
    }
}

/// The `kid` KREKI ID derives for the key in `pem`.
fn kid_of(pem: &str) -> String {
    kreki_auth::keys::public_from_pem(pem)
        .expect("an Ed25519 key")
        .kid
}

/// `claims` signed with EdDSA by the key in `pem`, naming `kid`.
fn sign_eddsa(pem: &str, kid: &str, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("an Ed25519 key");
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

/// `claims` signed HS256 with `secret` as the HMAC key, naming `kid`.
fn sign_hs256(secret: &[u8], kid: &str, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signed")
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"))
}

/// A token whose payload was swapped for `payload`, keeping the original header and signature.
fn with_payload(token: &str, payload: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().expect("a header");
    let _payload = parts.next().expect("a payload");
    let signature = parts.next().expect("a signature");
    format!("{header}.{}.{signature}", b64(payload))
}

fn payload_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

#[track_caller]
fn assert_refused(answer: &Answer, case: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {answer:#?}"
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "{case}"
    );
    assert_eq!(answer.body["status"], 401, "{case}");
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{case}: {answer:#?}");
}

/// Calls `/v1/auth/me` and an admin endpoint with `token`: both must refuse it.
async fn assert_token_refused(app: &TestApp, token: &str, case: &str) {
    assert_refused(&app.me(token).await, case);
    let admin = app
        .create_client(token, "Klinik Palsu", &json!(["system/*.read"]))
        .await;
    assert_refused(&admin, case);
}

#[sqlx::test(migrations = "../migrations")]
async fn forged_and_stale_tokens_are_401_with_a_challenge(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (admin, _) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let (citizen, tokens) = app.user_with(&common::phone(2), &[]).await;
    let kid = kid_of(&app.signing_pem);
    let citizen_id = citizen.to_string();
    let admin_id = admin.to_string();

    // The control: a token this test signs with the instance's own key is accepted, so every
    // refusal below is for the reason the case names.
    let genuine = sign_eddsa(
        &app.signing_pem,
        &kid,
        &claims(&admin_id, &["citizen", "admin"]),
    );
    assert_eq!(app.me(&genuine).await.status, StatusCode::OK);
    assert_eq!(app.me(&tokens.access).await.status, StatusCode::OK);

    let mut expired = claims(&citizen_id, &["citizen"]);
    expired.iat -= 7200;
    expired.exp -= 4500;
    let expired = sign_eddsa(&app.signing_pem, &kid, &expired);
    let answer = app.me(&expired).await;
    assert_refused(&answer, "expired");
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|value| value.contains("invalid_token") && value.contains("expired")),
        "{answer:#?}"
    );

    let mut promoted = payload_of(&tokens.access);
    promoted["roles"] = json!(["citizen", "admin"]);
    let tampered = with_payload(&tokens.access, &promoted);
    assert_token_refused(&app, &tampered, "tampered roles").await;
    let mut impersonating = payload_of(&tokens.access);
    impersonating["sub"] = json!(admin_id);
    assert_token_refused(
        &app,
        &with_payload(&tokens.access, &impersonating),
        "tampered sub",
    )
    .await;

    let stranger_pem = common::new_key_pem();
    let admin_claims = claims(&admin_id, &["citizen", "admin"]);
    let strangers_kid = sign_eddsa(&stranger_pem, &kid_of(&stranger_pem), &admin_claims);
    assert_token_refused(&app, &strangers_kid, "another key, its own kid").await;
    let borrowed_kid = sign_eddsa(&stranger_pem, &kid, &admin_claims);
    assert_token_refused(&app, &borrowed_kid, "another key, our kid").await;

    let none_header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    let none_payload = serde_json::to_value(&admin_claims).expect("claims");
    for signature in ["", "AAAA"] {
        let alg_none = format!("{}.{}.{signature}", b64(&none_header), b64(&none_payload));
        assert_token_refused(&app, &alg_none, "alg none").await;
    }
    let no_kid = {
        let header = Header::new(Algorithm::EdDSA);
        let key = EncodingKey::from_ed_pem(app.signing_pem.as_bytes()).expect("key");
        jsonwebtoken::encode(&header, &admin_claims, &key).expect("signed")
    };
    assert_token_refused(&app, &no_kid, "no kid").await;

    // A token that brings its own key in the header (`jwk`, RFC 7515 §4.1.3) is judged by our keys.
    let stranger_jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(
            ed25519_dalek::SigningKey::from_pkcs8_pem(&stranger_pem).expect("key").verifying_key().to_bytes()
        ),
    }))
    .expect("a JWK");
    for kid in [kid.clone(), kid_of(&stranger_pem)] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        header.jwk = Some(stranger_jwk.clone());
        let key = EncodingKey::from_ed_pem(stranger_pem.as_bytes()).expect("key");
        let self_keyed = jsonwebtoken::encode(&header, &admin_claims, &key).expect("signed");
        assert_token_refused(&app, &self_keyed, "embedded jwk").await;
    }

    // The classic attack: HS256 with the public key, in each form an attacker can get it, as the
    // HMAC secret (a verifier that lets the token pick its algorithm would accept these).
    let public = ed25519_dalek::SigningKey::from_pkcs8_pem(&app.signing_pem)
        .expect("our key")
        .verifying_key();
    let spki_pem = public
        .to_public_key_pem(LineEnding::LF)
        .expect("a public PEM");
    let spki_der = public.to_public_key_der().expect("a public DER");
    let jwks = send(app.request(Method::GET, "/.well-known/jwks.json")).await;
    let x = jwks.body["keys"][0]["x"].as_str().expect("x").to_owned();
    let secrets: [(&str, Vec<u8>); 5] = [
        ("public PEM", spki_pem.clone().into_bytes()),
        ("public PEM, trimmed", spki_pem.trim().as_bytes().to_vec()),
        ("public DER", spki_der.as_bytes().to_vec()),
        ("raw public key", public.to_bytes().to_vec()),
        ("JWK x", x.into_bytes()),
    ];
    for (form, secret) in secrets {
        let forged = sign_hs256(&secret, &kid, &admin_claims);
        assert_token_refused(&app, &forged, &format!("HS256 with the {form}")).await;
    }

    let mut other_issuer = admin_claims.clone();
    other_issuer.iss = "not-kreki".to_owned();
    let other_issuer = sign_eddsa(&app.signing_pem, &kid, &other_issuer);
    assert_token_refused(&app, &other_issuer, "another issuer").await;
    let mut other_audience = admin_claims.clone();
    other_audience.aud = "somebody-else".to_owned();
    let other_audience = sign_eddsa(&app.signing_pem, &kid, &other_audience);
    assert_token_refused(&app, &other_audience, "another audience").await;
    let not_a_user = sign_eddsa(&app.signing_pem, &kid, &claims("not-a-uuid", &["admin"]));
    assert_token_refused(&app, &not_a_user, "a user subject that is not an id").await;

    for garbage in ["", "abc", "a.b.c", "....", &"x".repeat(4000)] {
        let answer = send(
            app.request(Method::GET, "/v1/auth/me")
                .header("authorization", format!("Bearer {garbage}")),
        )
        .await;
        assert_refused(&answer, "garbage");
    }
    let anonymous = send(app.request(Method::GET, "/v1/auth/me")).await;
    anonymous.assert_problem(401, "unauthorized");
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
}
