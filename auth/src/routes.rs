//! KREKI ID's HTTP endpoints (the Auth table of docs/API.md). Handlers parse and validate, call
//! [`AuthService`], and shape the answer; every error goes through [`AuthError`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use kreki_platform::extract::{Form, Json, Path, PeerAddr};
use kreki_platform::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Email, NewPassword, PersonName, Phone, Role, Roles, UserId};
use crate::error::{AuthError, AuthResult};
use crate::extract::CurrentUser;
use crate::keys::Jwks;
use crate::service::{AuthService, NewAccount, TokenPair};
use crate::store::UserRow;
use crate::token::TokenVerifier;

/// State of the KREKI ID routes.
#[derive(Clone)]
pub struct AuthState {
    /// The service.
    pub service: Arc<AuthService>,
    /// The other services' parts of an account erasure (none until the binary registers them).
    pub erasers: crate::erasure::Erasers,
}

impl AuthState {
    /// The same state, erasing accounts through `hooks` as well (one per service holding
    /// personal data; see [`crate::erasure`]).
    pub fn with_erasers(mut self, hooks: Vec<Arc<dyn crate::erasure::AccountErasure>>) -> Self {
        self.erasers = crate::erasure::Erasers::new(hooks);
        self
    }
}

impl FromRef<AuthState> for TokenVerifier {
    fn from_ref(state: &AuthState) -> Self {
        state.service.verifier().clone()
    }
}

/// The routes, with their OpenAPI description, ready to merge into the app.
pub fn router(state: AuthState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, crate::erasure::delete_me))
        .routes(routes!(
            crate::account_view::view_user,
            crate::erasure::delete_user
        ))
        .routes(routes!(crate::audit::read_audit))
        .routes(routes!(set_roles))
        .routes(routes!(crate::trust::set_trust))
        .routes(routes!(crate::phone::send_code::send_code))
        .routes(routes!(crate::phone::verify_code::verify_code))
        .routes(routes!(create_client, crate::admin::list_clients))
        .routes(routes!(crate::admin::search_users))
        .routes(routes!(crate::admin::rotate_secret))
        .routes(routes!(crate::admin::set_scopes))
        .routes(routes!(crate::admin::revoke_client))
        .routes(routes!(client_token))
        .routes(routes!(jwks))
        .with_state(state)
}

/// Body of `POST /v1/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Indonesian mobile number in any usual spelling (`0812…`, `+62812…`), or `+<country>…`.
    #[schema(example = "0812-3456-7890")]
    pub phone: String,
    /// 8 to 128 characters.
    #[schema(example = "kata-sandi-aman")]
    pub password: String,
    /// Display name, 1 to 100 characters.
    #[schema(example = "Sari Wulandari")]
    pub name: String,
    /// Optional e-mail, a second way to sign in.
    #[schema(example = "sari@example.id")]
    pub email: Option<String>,
}

/// An account as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Account id.
    pub id: UserId,
    /// E.164 phone number.
    #[schema(example = "+6281234567890")]
    pub phone: String,
    /// Display name.
    pub name: String,
    /// E-mail, if given.
    pub email: Option<String>,
    /// Roles; always includes `citizen`.
    pub roles: Vec<Role>,
    /// When the account was made (UTC).
    pub created_at: DateTime<Utc>,
    /// Whether the phone was verified with a one-time code.
    pub phone_verified: bool,
    /// How far its panics are trusted: `new`, `verified`, `trusted` or `blocked` (regions send
    /// some levels to a coordinator's triage first).
    pub trust: crate::trust::Trust,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        let roles = row.roles().as_slice().to_vec();
        let trust = row.trust();
        Self {
            id: UserId(row.id),
            phone: row.phone,
            name: row.name,
            email: row.email,
            roles,
            created_at: row.created_at,
            phone_verified: row.phone_verified_at.is_some(),
            trust,
        }
    }
}

/// Creates a citizen account.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = User),
        (status = 409, description = "Phone or e-mail already registered (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the rules", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    state: axum::extract::State<AuthState>,
    Json(body): Json<RegisterRequest>,
) -> AuthResult<impl IntoResponse> {
    let mut errors = Vec::new();
    let phone = Phone::parse(&body.phone)
        .map_err(|why| errors.push(FieldError::new("phone", why)))
        .ok();
    let password = NewPassword::parse(&body.password)
        .map_err(|why| errors.push(FieldError::new("password", why)))
        .ok();
    let name = PersonName::parse(&body.name)
        .map_err(|why| errors.push(FieldError::new("name", why)))
        .ok();
    let email = match body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|email| !email.is_empty())
    {
        None => None,
        Some(email) => Email::parse(email)
            .map_err(|why| errors.push(FieldError::new("email", why)))
            .ok(),
    };
    let (Some(phone), Some(password), Some(name), true) =
        (phone, password, name, errors.is_empty())
    else {
        return Err(AuthError::Validation(errors));
    };
    let row = state
        .service
        .register(NewAccount {
            phone,
            password,
            name,
            email,
            roles: Roles::default(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(User::from(row))))
}

/// Body of `POST /v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Phone number (any spelling) or e-mail.
    #[schema(example = "081234567890")]
    pub login: String,
    /// The password.
    pub password: String,
}

/// An access token and the refresh token that renews it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenPairResponse {
    /// EdDSA-signed JWT; send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Opaque; exchange once at `/v1/auth/refresh`.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<TokenPair> for TokenPairResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer".to_owned(),
            expires_in: pair.expires_in_s,
        }
    }
}

/// Signs in with phone or e-mail and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPairResponse),
        (status = 401, description = "Wrong login or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failures; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    state: axum::extract::State<AuthState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> AuthResult<Json<TokenPairResponse>> {
    if body.login.trim().is_empty() {
        return Err(AuthError::field(
            "login",
            "must be a phone number or e-mail",
        ));
    }
    if body.password.is_empty() || body.password.chars().count() > crate::domain::PASSWORD_MAX_CHARS
    {
        return Err(AuthError::InvalidCredentials);
    }
    let ip = client_ip(peer, &headers, state.service.config().trust_forwarded_for);
    let pair = state.service.login(&body.login, &body.password, ip).await?;
    Ok(Json(pair.into()))
}

/// Body of `POST /v1/auth/refresh` and `POST /v1/auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from the last sign-in or refresh.
    pub refresh_token: String,
}

/// Exchanges a refresh token (once) for a new pair.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New pair; the old refresh token is spent", body = TokenPairResponse),
        (status = 401, description = "Unknown, expired or re-used token (re-use ends the whole sign-in)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn refresh(
    state: axum::extract::State<AuthState>,
    Json(body): Json<RefreshRequest>,
) -> AuthResult<Json<TokenPairResponse>> {
    Ok(Json(
        state
            .service
            .refresh(body.refresh_token.trim())
            .await?
            .into(),
    ))
}

/// Ends a sign-in: its refresh tokens stop working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest, security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
async fn logout(
    state: axum::extract::State<AuthState>,
    user: CurrentUser,
    Json(body): Json<RefreshRequest>,
) -> AuthResult<StatusCode> {
    state
        .service
        .logout(user.id, body.refresh_token.trim())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(state: axum::extract::State<AuthState>, user: CurrentUser) -> AuthResult<Json<User>> {
    Ok(Json(state.service.user(user.id).await?.into()))
}

/// Body of `PUT /v1/admin/users/{id}/roles`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetRolesRequest {
    /// The complete set of roles; `citizen` is always kept.
    #[schema(example = json!(["volunteer"]))]
    pub roles: Vec<String>,
}

/// Replaces an account's roles (admins only). Takes effect in new access tokens (at most 15 min).
#[utoipa::path(put, path = "/v1/admin/users/{id}/roles", tag = "admin", request_body = SetRolesRequest, security(("bearer" = [])),
    params(("id" = UserId, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account with its new roles", body = User),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would remove the last admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown role", body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_roles(
    state: axum::extract::State<AuthState>,
    caller: CurrentUser,
    Path(id): Path<uuid::Uuid>,
    Json(body): Json<SetRolesRequest>,
) -> AuthResult<Json<User>> {
    caller.require(Role::Admin)?;
    let mut errors = Vec::new();
    let roles: Vec<Role> = body
        .roles
        .iter()
        .enumerate()
        .filter_map(|(index, name)| {
            let role = Role::parse(name);
            if role.is_none() {
                errors.push(FieldError::new(
                    format!("roles[{index}]"),
                    "must be one of citizen, volunteer, coordinator, trainer, admin",
                ));
            }
            role
        })
        .collect();
    if !errors.is_empty() {
        return Err(AuthError::Validation(errors));
    }
    let row = state
        .service
        .set_roles(UserId(id), &Roles::new(roles))
        .await?;
    Ok(Json(row.into()))
}

/// Body of `POST /v1/admin/clients`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateClientRequest {
    /// Who the client is (for example the hospital's name).
    #[schema(example = "RSUD Tarakan")]
    pub name: String,
    /// Scopes to grant.
    #[schema(example = json!(["system/*.read"]))]
    pub scopes: Vec<String>,
}

/// New client credentials; the secret is shown only here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedClient {
    /// Public id.
    pub client_id: String,
    /// Secret; store it now, it cannot be shown again.
    pub client_secret: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// Creates an OAuth2 client-credentials client for a health system (admins only).
#[utoipa::path(post, path = "/v1/admin/clients", tag = "admin", request_body = CreateClientRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the secret is in this answer only", body = CreatedClient),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown scope or empty name", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_client(
    state: axum::extract::State<AuthState>,
    caller: CurrentUser,
    Json(body): Json<CreateClientRequest>,
) -> AuthResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    let client = state
        .service
        .create_client(&body.name, &body.scopes, Some(caller.id))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient {
            client_id: client.client_id,
            client_secret: client.client_secret,
            scopes: client.scopes,
        }),
    ))
}

/// Form body of `POST /v1/auth/token` (RFC 6749 §4.4).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    /// Client id (or send it with the secret as HTTP Basic).
    pub client_id: Option<String>,
    /// Client secret.
    pub client_secret: Option<String>,
    /// Space-separated scopes wanted; all granted scopes when absent.
    pub scope: Option<String>,
}

/// An access token for a client.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientTokenResponse {
    /// EdDSA-signed JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Scopes granted, space-separated.
    pub scope: String,
}

/// OAuth2 client-credentials grant for health systems.
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Access token", body = ClientTokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_scope` or `unsupported_grant_type` (in `error`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_client`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn client_token(
    state: axum::extract::State<AuthState>,
    headers: HeaderMap,
    Form(form): Form<TokenRequest>,
) -> AuthResult<impl IntoResponse> {
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        None => {
            return Err(AuthError::InvalidTokenRequest(
                "grant_type is required".into(),
            ));
        }
        Some(_) => return Err(AuthError::UnsupportedGrantType),
    }
    let (client_id, client_secret) = match (
        basic_credentials(&headers),
        form.client_id,
        form.client_secret,
    ) {
        (Some(basic), _, _) => basic,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => {
            return Err(AuthError::InvalidTokenRequest(
                "client_id and client_secret are required".into(),
            ));
        }
    };
    let token = state
        .service
        .client_token(&client_id, &client_secret, form.scope.as_deref())
        .await?;
    // RFC 6749 §5.1: token answers must not be cached.
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(ClientTokenResponse {
            access_token: token.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: token.expires_in_s,
            scope: token.scope,
        }),
    ))
}

/// Public keys that verify KREKI access tokens (current first, then the previous during rotation).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWK Set", body = Jwks)))]
async fn jwks(state: axum::extract::State<AuthState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.service.keys().jwks()),
    )
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The client's address: the socket peer, or the last `X-Forwarded-For` hop when configured to
/// trust the proxy in front.
fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    let forwarded = trust_forwarded_for
        .then(|| {
            headers
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .flatten();
    forwarded
        .or(peer.map(|addr| addr.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}
