//! The simulated people's accounts: their phones, their password, the certifications each
//! simulated volunteer holds, and creating the missing ones in the database (what `kreki demo`
//! does before the simulator signs them in through the API).

use anyhow::Context;
use kreki_auth::domain::{NewPassword, PersonName, Phone, Role, Roles};
use kreki_auth::service::NewAccount;

/// The simulated accounts' password (public, like every demo password).
pub const PASSWORD: &str = "demo-simulasi";
/// Most simulated volunteers (the phone scheme holds more; a demo needs fewer).
pub const MAX_VOLUNTEERS: usize = 500;
/// Most simulated citizens.
pub const MAX_CITIZENS: usize = 200;

/// The phone of simulated volunteer `index` (0-based): `081299000001`, `081299000002`, ...
pub fn volunteer_phone(index: usize) -> String {
    format!("0812990{:05}", index + 1)
}

/// The phone of simulated citizen `index` (0-based): `081399000001`, ...
pub fn citizen_phone(index: usize) -> String {
    format!("0813990{:05}", index + 1)
}

/// The certifications simulated volunteer `index` holds: everyone first aid, two in three BLS,
/// one in two basic fire fighting; so every kind finds responders, but not every volunteer.
pub fn volunteer_certifications(index: usize) -> Vec<&'static str> {
    let mut codes = vec!["first_aid"];
    if index % 3 != 2 {
        codes.push("bls");
    }
    if index.is_multiple_of(2) {
        codes.push("fire_basic");
    }
    codes
}

/// Creates the simulated accounts that are missing (directly in the database, like `kreki user
/// create`) and grants each simulated volunteer its certifications (like `kreki volunteer
/// grant-cert`), for `volunteers` volunteers and `citizens` citizens.
///
/// # Errors
/// Database failures.
pub async fn seed_accounts(
    pool: &sqlx::PgPool,
    auth: &kreki_auth::AuthService,
    volunteers: usize,
    citizens: usize,
) -> anyhow::Result<()> {
    for index in 0..volunteers {
        let id = ensure_account(
            pool,
            auth,
            &volunteer_phone(index),
            &format!("Relawan Simulasi {:02}", index + 1),
            &[Role::Volunteer],
        )
        .await?;
        for code in volunteer_certifications(index) {
            kreki_dispatch::eligibility::grant(pool, id, code, None)
                .await
                .context("granting a simulated volunteer's certification")?;
        }
    }
    for index in 0..citizens {
        ensure_account(
            pool,
            auth,
            &citizen_phone(index),
            &format!("Warga Simulasi {:02}", index + 1),
            &[],
        )
        .await?;
    }
    Ok(())
}

/// The id of the account with `phone`, created with [`PASSWORD`] first when missing (no hashing
/// when it exists).
///
/// # Errors
/// Database failures, or a phone or name that does not parse.
pub async fn ensure_account(
    pool: &sqlx::PgPool,
    auth: &kreki_auth::AuthService,
    phone: &str,
    name: &str,
    roles: &[Role],
) -> anyhow::Result<uuid::Uuid> {
    let phone = Phone::parse(phone).map_err(anyhow::Error::msg)?;
    if let Some(row) = kreki_auth::store::user_by_phone(pool, phone.as_str()).await? {
        return Ok(row.id);
    }
    let account = NewAccount {
        phone: phone.clone(),
        password: NewPassword::parse(PASSWORD).map_err(anyhow::Error::msg)?,
        name: PersonName::parse(name).map_err(anyhow::Error::msg)?,
        email: None,
        roles: Roles::new(roles.iter().copied()),
    };
    match auth.register(account).await {
        Ok(row) => Ok(row.id),
        Err(kreki_auth::AuthError::PhoneTaken) => {
            kreki_auth::store::user_by_phone(pool, phone.as_str())
                .await?
                .map(|row| row.id)
                .context("an account vanished while it was created")
        }
        Err(error) => Err(anyhow::anyhow!(error.to_problem())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_valid_and_distinct() {
        for index in [0, 1, 99, MAX_VOLUNTEERS - 1] {
            assert!(Phone::parse(&volunteer_phone(index)).is_ok());
            assert!(Phone::parse(&citizen_phone(index)).is_ok());
        }
        assert_eq!(volunteer_phone(0), "081299000001");
        assert_ne!(volunteer_phone(0), citizen_phone(0));
        assert!(NewPassword::parse(PASSWORD).is_ok());
        assert!(
            (0..30).all(|i| volunteer_certifications(i).contains(&"first_aid")),
            "everyone can take medical and accident"
        );
        assert!((0..3).any(|i| volunteer_certifications(i).contains(&"bls")));
        assert!((0..3).any(|i| volunteer_certifications(i).contains(&"fire_basic")));
    }
}
