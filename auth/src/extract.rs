//! Who is calling: extractors every KREKI service uses to authenticate a request and check its role
//! or scope. They verify the access token with public keys only ([`TokenVerifier`]), so a service
//! running without KREKI ID in its process needs no shared secret.
//!
//! A handler takes [`CurrentUser`] (a person; clients get 403) or [`Caller`] (person or client) and
//! asks `require(Role::Coordinator)` where the endpoint is not open to every signed-in person.

use axum::extract::{FromRef, FromRequestParts};
use http::header;
use http::request::Parts;

use crate::domain::{Role, Roles, UserId};
use crate::error::AuthError;
use crate::token::{Claims, SubjectKind, TokenVerifier};

/// An authenticated caller: a person or a machine client.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A person signed in with KREKI ID.
    User(CurrentUser),
    /// An OAuth2 client (a health system).
    Client(ClientCaller),
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Account id.
    pub id: UserId,
    /// Roles at the time the access token was issued (at most its lifetime ago).
    pub roles: Roles,
    /// Display name.
    pub name: String,
    /// Trust level when the access token was issued (`new` for tokens from before trust levels).
    pub trust: crate::trust::Trust,
}

impl CurrentUser {
    /// Ok when the person holds `role` (or a role that includes it); 403 otherwise.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] naming the role needed.
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.roles.grants(role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!("this needs the {role} role")))
        }
    }

    /// Ok when the person holds any of `roles`.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] naming the roles that would do.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), AuthError> {
        if roles.iter().any(|role| self.roles.grants(*role)) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
            Err(AuthError::Forbidden(format!(
                "this needs one of the roles: {}",
                names.join(", ")
            )))
        }
    }
}

/// An OAuth2 client-credentials caller.
#[derive(Debug, Clone)]
pub struct ClientCaller {
    /// The client's public id.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl ClientCaller {
    /// Ok when the client holds `scope`, or the wildcard covering it (`system/*.read` covers
    /// `system/Encounter.read`).
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] naming the scope needed.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self
            .scopes
            .iter()
            .any(|granted| scope_covers(granted, scope))
        {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "this needs the scope {scope}"
            )))
        }
    }
}

/// True when `granted` covers `wanted` (`system/*.read` covers `system/Task.read`).
pub fn scope_covers(granted: &str, wanted: &str) -> bool {
    if granted == wanted {
        return true;
    }
    match (granted.split_once('/'), wanted.split_once('/')) {
        (Some((granted_ctx, granted_rest)), Some((wanted_ctx, wanted_rest))) => {
            granted_ctx == wanted_ctx
                && granted_rest.strip_prefix("*.").is_some_and(|access| {
                    wanted_rest
                        .rsplit_once('.')
                        .is_some_and(|(_, wanted_access)| wanted_access == access)
                })
        }
        _ => false,
    }
}

impl Caller {
    /// Verifies `token` and tells who it speaks for. Used by the extractors, and by the WebSocket
    /// endpoint that also accepts `?access_token=` from browsers.
    ///
    /// # Errors
    /// 401 problems for missing, expired or invalid tokens.
    pub async fn from_token(verifier: &TokenVerifier, token: &str) -> Result<Self, AuthError> {
        let claims = verifier.verify(token).await?;
        Self::from_claims(claims)
    }

    fn from_claims(claims: Claims) -> Result<Self, AuthError> {
        match claims.kind {
            SubjectKind::User => {
                let id = claims.sub.parse().map(UserId).map_err(|_| {
                    AuthError::Token(crate::token::TokenError::Invalid("bad subject".into()))
                })?;
                Ok(Self::User(CurrentUser {
                    id,
                    roles: Roles::from_names(claims.roles.iter().map(String::as_str)),
                    name: claims.name.unwrap_or_default(),
                    trust: claims.trust.unwrap_or(crate::trust::Trust::New),
                }))
            }
            SubjectKind::Client => Ok(Self::Client(ClientCaller {
                client_id: claims.sub,
                scopes: claims
                    .scope
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            })),
        }
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl<S> FromRequestParts<S> for Caller
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = bearer_token(parts).ok_or(AuthError::MissingToken)?;
        let verifier = TokenVerifier::from_ref(state);
        let caller = Self::from_token(&verifier, token).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::User(user) => Ok(user),
            Caller::Client(_) => Err(AuthError::Forbidden(
                "this endpoint is for people, not OAuth2 clients".into(),
            )),
        }
    }
}

impl<S> FromRequestParts<S> for ClientCaller
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Client(client) => Ok(client),
            Caller::User(_) => Err(AuthError::Forbidden(
                "this endpoint is for OAuth2 clients".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scope_covers;

    #[test]
    fn wildcard_scopes_cover_only_their_access() {
        assert!(scope_covers("system/*.read", "system/Encounter.read"));
        assert!(scope_covers("system/Task.read", "system/Task.read"));
        assert!(!scope_covers("system/*.read", "system/Encounter.write"));
        assert!(!scope_covers("user/*.read", "system/Encounter.read"));
        assert!(!scope_covers("system/Task.read", "system/Encounter.read"));
    }
}
