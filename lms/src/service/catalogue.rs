//! The certification catalogue and the courses: what there is to learn and to hold. Admins add
//! certifications; trainers create courses (answers are kept server-side and never listed).

use kreki_platform::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::course::{Course, CourseDefinition};
use crate::domain::CertificationCode;
use crate::error::{LmsError, LmsResult};
use crate::store::{self};

use super::LmsService;

/// Most courses `GET /v1/lms/courses` lists.
const MAX_LISTED_COURSES: i64 = 100;

/// A certification of the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Certification {
    /// Stable code dispatch's requirements name (`bls`).
    #[schema(example = "bls")]
    pub code: String,
    /// Display name.
    pub name: String,
    /// How long a certificate of it is valid, in days.
    pub validity_days: i32,
}

impl From<store::CertificationRow> for Certification {
    fn from(row: store::CertificationRow) -> Self {
        Self {
            code: row.code,
            name: row.name,
            validity_days: row.validity_days,
        }
    }
}

impl LmsService {
    /// The certification catalogue.
    ///
    /// # Errors
    /// Database errors.
    pub async fn certifications(&self) -> LmsResult<Vec<Certification>> {
        Ok(store::certifications(&self.pool)
            .await?
            .into_iter()
            .map(Certification::from)
            .collect())
    }

    /// Adds a certification (admins).
    ///
    /// # Errors
    /// [`LmsError::Validation`] for a bad name or validity, [`LmsError::CertificationExists`].
    pub async fn add_certification(
        &self,
        code: &CertificationCode,
        name: &str,
        validity_days: i32,
    ) -> LmsResult<Certification> {
        let mut errors = Vec::new();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new("name", "must be 1 to 200 characters"));
        }
        if !(1..=3650).contains(&validity_days) {
            errors.push(FieldError::new("validity_days", "must be 1 to 3650 days"));
        }
        if !errors.is_empty() {
            return Err(LmsError::Validation(errors));
        }
        match store::insert_certification(&self.pool, code.as_str(), name, validity_days).await {
            Ok(row) => Ok(row.into()),
            Err(error) if kreki_platform::db::unique_violation(&error).is_some() => {
                Err(LmsError::CertificationExists)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Creates a course from a definition (trainers).
    ///
    /// # Errors
    /// [`LmsError::Validation`] naming every broken rule (an unknown certification included).
    pub async fn create_course(
        &self,
        definition: &CourseDefinition,
        created_by: Option<Uuid>,
    ) -> LmsResult<Course> {
        let id = self
            .insert_course(definition, None, None, created_by)
            .await?;
        self.course(id).await
    }

    /// Inserts a course, with a `slug` for built-in content.
    pub(crate) async fn insert_course(
        &self,
        definition: &CourseDefinition,
        slug: Option<&str>,
        series: Option<(Uuid, i32)>,
        created_by: Option<Uuid>,
    ) -> LmsResult<Uuid> {
        let errors = definition.validate();
        if !errors.is_empty() {
            return Err(LmsError::Validation(errors));
        }
        let mut tx = self.pool.begin().await?;
        if let Some(code) = &definition.certification
            && store::certification(&mut tx, code.trim()).await?.is_none()
        {
            return Err(LmsError::field(
                "certification",
                "is not in the catalogue (GET /v1/lms/certifications)",
            ));
        }
        let id = Uuid::now_v7();
        match store::insert_course(&mut tx, id, slug, series, definition, created_by).await {
            Err(error)
                if kreki_platform::db::unique_violation(&error)
                    == Some("courses_series_version_key") =>
            {
                return Err(LmsError::VersionTaken);
            }
            other => other?,
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Every course (the newest 100), answers hidden.
    ///
    /// # Errors
    /// Database errors.
    pub async fn courses(&self) -> LmsResult<Vec<Course>> {
        let mut courses = Vec::new();
        for id in store::course_ids(&self.pool, MAX_LISTED_COURSES).await? {
            if let Some(course) = store::course(&self.pool, id).await? {
                courses.push(course);
            }
        }
        Ok(courses)
    }

    /// One course, answers hidden.
    ///
    /// # Errors
    /// [`LmsError::NotFound`].
    pub async fn course(&self, id: Uuid) -> LmsResult<Course> {
        store::course(&self.pool, id)
            .await?
            .ok_or(LmsError::NotFound("course"))
    }

    /// The id of built-in content stored under `slug`.
    pub(crate) async fn course_id_by_slug(&self, slug: &str) -> LmsResult<Option<Uuid>> {
        Ok(store::course_id_by_slug(&self.pool, slug).await?)
    }
}
