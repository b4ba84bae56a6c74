//! Certificates: one's own, the public verification of a printed code, certificates earned
//! elsewhere (recorded by trainers with evidence), revocation, and what dispatch asks: who holds
//! which certification now.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kreki_platform::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{CertificateStatus, certificate_status, normalise_code};
use crate::error::{LmsError, LmsResult};
use crate::store::{self, CertificateRow, NewCertificate};

use super::{Certification, LmsService};

/// A certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Certificate {
    /// Certificate id.
    pub id: Uuid,
    /// Holder.
    pub user_id: Uuid,
    /// Certification code.
    #[schema(example = "bls")]
    pub certification: String,
    /// Holder's name as printed.
    pub holder_name: String,
    /// Start of validity (UTC).
    pub issued_at: DateTime<Utc>,
    /// End of validity (UTC).
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// Public verification code.
    #[schema(example = "7K3M9Q-X2P8RT-4VW6ZA-H1N5CD")]
    pub code: String,
    /// Where it stands now.
    pub status: CertificateStatus,
    /// `course` (earned here) or `external` (recorded by a trainer).
    pub source: String,
    /// The course that issued it.
    pub course_id: Option<Uuid>,
    /// Evidence the recording trainer saw.
    pub evidence: Option<String>,
}

impl From<CertificateRow> for Certificate {
    fn from(row: CertificateRow) -> Self {
        let status = certificate_status(row.issued_at, row.expires_at, row.revoked_at, Utc::now());
        Self {
            id: row.id,
            user_id: row.user_id,
            certification: row.certification,
            holder_name: row.holder_name,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            revoked_reason: row.revoked_reason,
            code: row.code,
            status,
            source: row.source,
            course_id: row.course_id,
            evidence: row.evidence,
        }
    }
}

/// What the public verify endpoint says about a code: only what is printed on the certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// True only when the certificate is valid now.
    pub valid: bool,
    /// `valid`, `expired`, `revoked` or `pending`.
    pub status: CertificateStatus,
    /// Certification code.
    pub certification: String,
    /// Certification name.
    pub certification_name: String,
    /// Holder's name.
    pub holder_name: String,
    /// Start of validity (UTC).
    pub issued_at: DateTime<Utc>,
    /// End of validity (UTC).
    pub expires_at: DateTime<Utc>,
}

/// A certificate earned elsewhere, as a trainer records it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ExternalCertificate {
    /// The holder's KREKI account.
    pub user_id: Uuid,
    /// Certification code.
    #[schema(example = "bls")]
    pub certification: String,
    /// When it was issued (UTC); not in the future.
    pub issued_at: DateTime<Utc>,
    /// When it ends (UTC); default: `issued_at` + the certification's validity days.
    pub expires_at: Option<DateTime<Utc>>,
    /// What the trainer saw (card number, issuer, a link to a scan), up to 2000 characters.
    #[schema(example = "Kartu BLS PMI No. 12345, berlaku s.d. 2027-03")]
    pub evidence: Option<String>,
    /// The name to print; default: the holder's name in KREKI ID.
    pub holder_name: Option<String>,
}

impl LmsService {
    /// The user's certificates (all of them, with their status), newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn certificates_of(&self, user: Uuid) -> LmsResult<Vec<Certificate>> {
        Ok(store::certificates_of(&self.pool, user)
            .await?
            .into_iter()
            .map(Certificate::from)
            .collect())
    }

    /// One certificate, with the name of its certification.
    ///
    /// # Errors
    /// [`LmsError::NotFound`].
    pub async fn certificate(&self, id: Uuid) -> LmsResult<(Certificate, Certification)> {
        let row = store::certificate(&self.pool, id)
            .await?
            .ok_or(LmsError::NotFound("certificate"))?;
        let mut conn = self.pool.acquire().await?;
        let certification = store::certification(&mut conn, &row.certification)
            .await?
            .ok_or(LmsError::Internal(
                "certificate of a missing certification".into(),
            ))?;
        Ok((row.into(), certification.into()))
    }

    /// Records a certificate earned elsewhere (trainers), with the trainer and evidence kept.
    ///
    /// # Errors
    /// [`LmsError::Validation`] naming the field (unknown certification, future `issued_at`,
    /// `expires_at` not after `issued_at`, a `user_id` no account has). The printed name is
    /// `holder_name` when given, else the account's name in KREKI ID (through [`AccountNames`](crate::ports::AccountNames)).
    pub async fn record_external(
        &self,
        recorded_by: Uuid,
        request: &ExternalCertificate,
    ) -> LmsResult<Certificate> {
        let mut errors = Vec::new();
        if request.issued_at > Utc::now() {
            errors.push(FieldError::new("issued_at", "must not be in the future"));
        }
        if request
            .expires_at
            .is_some_and(|expires| expires <= request.issued_at)
        {
            errors.push(FieldError::new("expires_at", "must be after issued_at"));
        }
        let evidence = request
            .evidence
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        if evidence.is_some_and(|e| e.chars().count() > 2000) {
            errors.push(FieldError::new(
                "evidence",
                "must be at most 2000 characters",
            ));
        }
        let given_name = request
            .holder_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if given_name.is_some_and(|n| n.chars().count() > 100) {
            errors.push(FieldError::new(
                "holder_name",
                "must be at most 100 characters",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let code = request.certification.trim();
        if store::certification(&mut tx, code).await?.is_none() {
            errors.push(FieldError::new(
                "certification",
                "is not in the catalogue (GET /v1/lms/certifications)",
            ));
        }
        // The holder must be a KREKI ID account; their name there is the one printed unless the
        // trainer gives another (the name on the card earned elsewhere, say).
        let account_name = match self.names.name_of(request.user_id).await {
            Ok(name) => name,
            Err(why) => {
                tracing::warn!(user = %request.user_id, error = %why, "KREKI ID not reachable for the holder's name");
                None
            }
        };
        let holder_name = match (given_name, account_name) {
            (Some(name), _) => Some(name.to_owned()),
            (None, Some(name)) if !name.trim().is_empty() => Some(name.trim().to_owned()),
            (None, _) => store::learner_name(&mut tx, request.user_id).await?,
        };
        if holder_name.is_none() {
            errors.push(FieldError::new(
                "user_id",
                "is not a KREKI ID account (search accounts in the admin console)",
            ));
        }
        let (Some(holder_name), true) = (holder_name, errors.is_empty()) else {
            return Err(LmsError::Validation(errors));
        };
        let row = store::insert_certificate(
            &mut tx,
            &NewCertificate {
                user_id: request.user_id,
                certification: code,
                holder_name: &holder_name,
                issued_at: Some(request.issued_at),
                expires_at: request.expires_at,
                source: "external",
                course_id: None,
                recorded_by: Some(recorded_by),
                evidence,
            },
        )
        .await?;
        store::announce(&mut tx, &[request.user_id]).await?;
        tx.commit().await?;
        metrics::counter!("lms_certificates_issued_total", "source" => "external").increment(1);
        tracing::info!(user = %request.user_id, certification = code, %recorded_by, "external certificate recorded");
        self.changed(request.user_id);
        Ok(row.into())
    }

    /// Revokes a certificate (trainers), then tells the [`CertificationListener`](crate::ports::CertificationListener).
    ///
    /// # Errors
    /// [`LmsError::Validation`] for an empty or long reason, [`LmsError::NotFound`],
    /// [`LmsError::AlreadyRevoked`].
    pub async fn revoke(&self, id: Uuid, by: Uuid, reason: &str) -> LmsResult<Certificate> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(LmsError::field("reason", "must be 1 to 500 characters"));
        }
        let mut tx = self.pool.begin().await?;
        let revoked = store::revoke(&mut tx, id, by, reason).await?;
        if let Some(row) = &revoked {
            store::announce(&mut tx, &[row.user_id]).await?;
        }
        tx.commit().await?;
        match revoked {
            Some(row) => {
                metrics::counter!("lms_certificates_revoked_total").increment(1);
                tracing::info!(certificate = %id, user = %row.user_id, %by, "certificate revoked");
                self.changed(row.user_id);
                Ok(row.into())
            }
            None => Err(match store::certificate(&self.pool, id).await? {
                Some(_) => LmsError::AlreadyRevoked,
                None => LmsError::NotFound("certificate"),
            }),
        }
    }

    /// What a verification code stands for, publicly: only what is printed on the certificate.
    ///
    /// # Errors
    /// [`LmsError::NotFound`] for a code nobody was given.
    pub async fn verify(&self, code: &str) -> LmsResult<Verification> {
        let code = normalise_code(code);
        if code.len() > 64 {
            return Err(LmsError::NotFound("certificate"));
        }
        let row = store::certificate_by_code(&self.pool, &code)
            .await?
            .ok_or(LmsError::NotFound("certificate"))?;
        let mut conn = self.pool.acquire().await?;
        let name = store::certification(&mut conn, &row.certification)
            .await?
            .map_or_else(
                || row.certification.clone(),
                |certification| certification.name,
            );
        let status = certificate_status(row.issued_at, row.expires_at, row.revoked_at, Utc::now());
        Ok(Verification {
            valid: status == CertificateStatus::Valid,
            status,
            certification: row.certification,
            certification_name: name,
            holder_name: row.holder_name,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
        })
    }

    /// Codes of the certifications `user` holds a valid certificate of now (issued, not expired,
    /// not revoked), sorted. What dispatch's `CertificationSource::valid_for` returns.
    ///
    /// # Errors
    /// [`LmsError::Database`].
    pub async fn valid_certifications(&self, user: Uuid) -> Result<Vec<String>, LmsError> {
        Ok(store::valid_codes(&self.pool, user).await?)
    }

    /// Every user with at least one valid certification, with their codes (sorted). What dispatch
    /// loads at start (`CertificationSource::all_valid`).
    ///
    /// # Errors
    /// [`LmsError::Database`].
    pub async fn all_valid_certifications(&self) -> Result<HashMap<Uuid, Vec<String>>, LmsError> {
        let mut valid: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (user, code) in store::all_valid_codes(&self.pool).await? {
            valid.entry(user).or_default().push(code);
        }
        Ok(valid)
    }
}
