//! Who may call what: every kind of caller against every KREKI ID endpoint in one table, and the
//! admin's role changes (validation, the last admin, new roles reaching the next access token).

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kreki_auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{self, PASSWORD, TestApp, send, tokens_of};

/// A kind of caller.
#[derive(Debug, Clone, Copy)]
enum Who {
    Anonymous,
    Citizen,
    Volunteer,
    Coordinator,
    Trainer,
    Admin,
    Client,
}

const WHO: [Who; 7] = [
    Who::Anonymous,
    Who::Citizen,
    Who::Volunteer,
    Who::Coordinator,
    Who::Trainer,
    Who::Admin,
    Who::Client,
];

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Register,
    Login,
    Refresh,
    Logout,
    Me,
    SetRoles,
    CreateClient,
    ClientToken,
    Jwks,
    ViewUser,
    Audit,
}

/// The expected status of each endpoint for each caller, in the order of [`WHO`]:
/// anonymous, citizen, volunteer, coordinator, trainer, admin, OAuth2 client.
const MATRIX: [(Endpoint, [u16; 7]); 11] = [
    (Endpoint::Register, [201, 201, 201, 201, 201, 201, 201]),
    (Endpoint::Login, [200, 200, 200, 200, 200, 200, 200]),
    (Endpoint::Refresh, [200, 200, 200, 200, 200, 200, 200]),
    (Endpoint::Logout, [401, 204, 204, 204, 204, 204, 403]),
    (Endpoint::Me, [401, 200, 200, 200, 200, 200, 403]),
    (Endpoint::SetRoles, [401, 403, 403, 403, 403, 200, 403]),
    (Endpoint::CreateClient, [401, 403, 403, 403, 403, 201, 403]),
    (Endpoint::ClientToken, [200, 200, 200, 200, 200, 200, 200]),
    (Endpoint::Jwks, [200, 200, 200, 200, 200, 200, 200]),
    (Endpoint::ViewUser, [401, 403, 403, 403, 403, 200, 403]),
    (Endpoint::Audit, [401, 403, 403, 403, 403, 200, 403]),
];

/// What the matrix needs: a bearer token per caller, an account to sign in and change, a client.
struct Fixture {
    bearer: [Option<String>; 7],
    member_phone: String,
    member_id: String,
    refresh_token: String,
    client_id: String,
    client_secret: String,
    registered: u32,
}

async fn fixture(app: &TestApp) -> Fixture {
    let mut bearer: [Option<String>; 7] = Default::default();
    let staff = [
        (Who::Citizen, vec![]),
        (Who::Volunteer, vec![Role::Volunteer]),
        (Who::Coordinator, vec![Role::Coordinator]),
        (Who::Trainer, vec![Role::Trainer]),
        (Who::Admin, vec![Role::Admin]),
    ];
    for (n, (who, roles)) in (1..).zip(staff) {
        let (_, tokens) = app.user_with(&common::phone(n), &roles).await;
        bearer[who as usize] = Some(tokens.access);
    }
    let admin = bearer[Who::Admin as usize].clone().expect("an admin");
    let created = app
        .create_client(&admin, "RSUD Matriks", &json!(["system/*.read"]))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:#?}");
    let (client_id, client_secret) = (created.str("client_id"), created.str("client_secret"));
    let token = app
        .client_token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
        ])
        .await;
    assert_eq!(token.status, StatusCode::OK, "{token:#?}");
    bearer[Who::Client as usize] = Some(token.str("access_token"));

    let member_phone = common::phone(50);
    let member_id = app
        .create_user(&member_phone, &[Role::Volunteer])
        .await
        .to_string();
    let refresh_token = app.tokens(&member_phone, PASSWORD).await.refresh;
    Fixture {
        bearer,
        member_phone,
        member_id,
        refresh_token,
        client_id,
        client_secret,
        registered: 100,
    }
}

/// Calls `endpoint` as `who` with a request that is otherwise valid, and returns the status.
async fn call(app: &TestApp, fixture: &mut Fixture, endpoint: Endpoint, who: Who) -> u16 {
    let path = match endpoint {
        Endpoint::Register => "/v1/auth/register".to_owned(),
        Endpoint::Login => "/v1/auth/login".to_owned(),
        Endpoint::Refresh => "/v1/auth/refresh".to_owned(),
        Endpoint::Logout => "/v1/auth/logout".to_owned(),
        Endpoint::Me => "/v1/auth/me".to_owned(),
        Endpoint::SetRoles => format!("/v1/admin/users/{}/roles", fixture.member_id),
        Endpoint::CreateClient => "/v1/admin/clients".to_owned(),
        Endpoint::ClientToken => "/v1/auth/token".to_owned(),
        Endpoint::Jwks => "/.well-known/jwks.json".to_owned(),
        Endpoint::ViewUser => format!("/v1/admin/users/{}?reason=matrix", fixture.member_id),
        Endpoint::Audit => format!("/v1/admin/audit?subject={}", fixture.member_id),
    };
    let method = match endpoint {
        Endpoint::Me | Endpoint::Jwks | Endpoint::ViewUser | Endpoint::Audit => Method::GET,
        Endpoint::SetRoles => Method::PUT,
        _ => Method::POST,
    };
    let mut request = app.request(method, &path);
    if let Some(token) = &fixture.bearer[who as usize] {
        request = request.bearer_auth(token);
    }
    request = match endpoint {
        Endpoint::Register => {
            fixture.registered += 1;
            request.json(&json!({
                "phone": common::phone(fixture.registered), "password": PASSWORD, "name": "Warga",
            }))
        }
        Endpoint::Login => {
            request.json(&json!({"login": fixture.member_phone, "password": PASSWORD}))
        }
        Endpoint::Refresh => request.json(&json!({"refresh_token": fixture.refresh_token})),
        Endpoint::Logout => request.json(&json!({"refresh_token": "krt_not-this-sign-in"})),
        Endpoint::SetRoles => request.json(&json!({"roles": ["volunteer"]})),
        Endpoint::CreateClient => {
            request.json(&json!({"name": "Puskesmas", "scopes": ["system/Task.read"]}))
        }
        Endpoint::ClientToken => request.form(&[
            ("grant_type", "client_credentials"),
            ("client_id", fixture.client_id.as_str()),
            ("client_secret", fixture.client_secret.as_str()),
        ]),
        Endpoint::Me | Endpoint::Jwks | Endpoint::ViewUser | Endpoint::Audit => request,
    };
    let answer = send(request).await;
    if matches!(endpoint, Endpoint::Refresh) && answer.status == StatusCode::OK {
        fixture.refresh_token = answer.str("refresh_token");
    }
    if answer.status.is_client_error() {
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{endpoint:?} as {who:?}: {answer:#?}"
        );
    }
    answer.status.as_u16()
}

#[sqlx::test(migrations = "../migrations")]
async fn every_caller_against_every_endpoint(pool: PgPool) {
    let app = common::spawn(pool).await;
    let mut fixture = fixture(&app).await;
    let mut mismatches = String::new();
    for (endpoint, expected) in MATRIX {
        for (who, expected) in WHO.into_iter().zip(expected) {
            let got = call(&app, &mut fixture, endpoint, who).await;
            if got != expected {
                let _ = writeln!(
                    mismatches,
                    "{endpoint:?} as {who:?}: expected {expected}, got {got}"
                );
            }
        }
    }
    assert!(mismatches.is_empty(), "role matrix:\n{mismatches}");
}

fn roles_in(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).expect("a payload");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
            .expect("JSON claims");
    claims["roles"].clone()
}

#[sqlx::test(migrations = "../migrations")]
async fn admin_role_changes(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (admin_id, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let admin_id = admin_id.to_string();
    let member_phone = common::phone(2);
    let member_id = app.create_user(&member_phone, &[]).await.to_string();
    let member = app.tokens(&member_phone, PASSWORD).await;

    let unknown_role = app
        .set_roles(
            &admin.access,
            &member_id,
            &json!(["volunteer", "pilot", "root"]),
        )
        .await;
    unknown_role.assert_problem(422, "validation");
    assert_eq!(unknown_role.fields(), ["roles[1]", "roles[2]"]);
    let not_a_string = app.set_roles(&admin.access, &member_id, &json!([7])).await;
    not_a_string.assert_problem(422, "validation");
    assert_eq!(not_a_string.fields(), ["roles[0]"]);
    let not_a_list = app
        .set_roles(&admin.access, &member_id, &json!("admin"))
        .await;
    not_a_list.assert_problem(422, "validation");
    assert_eq!(not_a_list.fields(), ["roles"]);
    let missing = send(
        app.request(Method::PUT, &format!("/v1/admin/users/{member_id}/roles"))
            .bearer_auth(&admin.access)
            .json(&json!({})),
    )
    .await;
    missing.assert_problem(422, "validation");
    assert_eq!(missing.fields(), ["roles"]);

    let nobody = uuid::Uuid::now_v7().to_string();
    let unknown_user = app
        .set_roles(&admin.access, &nobody, &json!(["volunteer"]))
        .await;
    unknown_user.assert_problem(404, "not-found");
    let bad_id = app
        .set_roles(&admin.access, "not-a-uuid", &json!(["volunteer"]))
        .await;
    bad_id.assert_problem(400, "bad-request");
    // The platform's `Path` extractor names the parameter in `detail`; it fills `errors` only for
    // `ParseErrorAtKey`, while a UUID fails as `DeserializeError` (reported to platform/).
    assert!(
        bad_id.str("detail").contains("`id`"),
        "the parameter is named: {bad_id:#?}"
    );

    let last_admin = app
        .set_roles(&admin.access, &admin_id, &json!(["citizen"]))
        .await;
    last_admin.assert_problem(409, "last-admin");
    assert_eq!(last_admin.fields(), ["roles"]);

    let granted = app
        .set_roles(
            &admin.access,
            &member_id,
            &json!(["admin", "volunteer", "volunteer"]),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{granted:#?}");
    assert_eq!(granted.body["id"], member_id.as_str());
    assert_eq!(
        granted.body["roles"],
        json!(["citizen", "volunteer", "admin"])
    );

    // The member's access token still carries the old roles until it is renewed.
    assert_eq!(roles_in(&member.access), json!(["citizen"]));
    let too_early = app
        .create_client(&member.access, "Klinik", &json!(["system/*.read"]))
        .await;
    too_early.assert_problem(403, "forbidden");
    let me = app.me(&member.access).await;
    assert_eq!(me.body["roles"], json!(["citizen", "volunteer", "admin"]));
    let renewed = tokens_of(&app.refresh(&member.refresh).await);
    assert_eq!(
        roles_in(&renewed.access),
        json!(["citizen", "volunteer", "admin"])
    );
    let now_allowed = app
        .create_client(&renewed.access, "Klinik", &json!(["system/*.read"]))
        .await;
    assert_eq!(now_allowed.status, StatusCode::CREATED, "{now_allowed:#?}");

    // With two admins, one may step down; then the other is the last.
    let stepped_down = app
        .set_roles(&admin.access, &admin_id, &json!(["coordinator"]))
        .await;
    assert_eq!(stepped_down.status, StatusCode::OK, "{stepped_down:#?}");
    assert_eq!(
        stepped_down.body["roles"],
        json!(["citizen", "coordinator"])
    );
    let last = app.set_roles(&renewed.access, &member_id, &json!([])).await;
    last.assert_problem(409, "last-admin");
    let emptied = app.set_roles(&renewed.access, &admin_id, &json!([])).await;
    assert_eq!(emptied.status, StatusCode::OK, "{emptied:#?}");
    assert_eq!(
        emptied.body["roles"],
        json!(["citizen"]),
        "citizen is always kept"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn two_admins_demoting_each_other_at_once_leave_one_admin(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (ani_id, ani) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let (budi_id, budi) = app.user_with(&common::phone(2), &[Role::Admin]).await;
    let mut demotions = tokio::task::JoinSet::new();
    for (bearer, target) in [(ani.access, budi_id), (budi.access, ani_id)] {
        let request = app
            .request(Method::PUT, &format!("/v1/admin/users/{target}/roles"))
            .bearer_auth(bearer)
            .json(&json!({"roles": ["coordinator"]}));
        demotions.spawn(send(request));
    }
    let answers = demotions.join_all().await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|answer| answer.status.as_u16())
        .collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&409),
        "one demotion wins, the other would leave no admin: {answers:#?}"
    );
    let admins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth.users WHERE 'admin' = ANY (roles)")
            .fetch_one(&app.pool)
            .await
            .expect("counted");
    assert_eq!(admins, 1);
}
