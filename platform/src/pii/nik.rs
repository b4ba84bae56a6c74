//! [`Nik`]: an Indonesian national id number, validated once at the edge, and masked wherever it
//! could reach a log, a debug print or an answer by accident.

use serde::{Deserialize, Serialize};

/// What a caller is told when a NIK does not parse (the field is named by the caller).
pub const NIK_RULE: &str = "must be a NIK of exactly 16 digits";

/// An Indonesian national id number (Nomor Induk Kependudukan): exactly 16 ASCII digits.
///
/// Personal data under UU PDP (Law 27/2022). `Debug` and `Display` show only the last four digits
/// ([`Nik::masked`]); the digits themselves come out only through [`Nik::expose`], which the code
/// calls where a NIK is encrypted, hashed for search, or sent to SATUSEHAT.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nik(String);

impl Nik {
    /// Parses a NIK; spaces, dots and dashes people type between groups are dropped.
    ///
    /// ```
    /// use kreki_platform::pii::Nik;
    ///
    /// assert_eq!(Nik::parse("3171-0123-4567-8901").map(|nik| nik.expose().to_owned()), Ok("3171012345678901".to_owned()));
    /// assert!(Nik::parse("12345").is_err());
    /// ```
    ///
    /// # Errors
    /// [`NIK_RULE`] when it is not 16 digits.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let digits: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-'))
            .collect();
        if digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(NIK_RULE)
        }
    }

    /// Parses a NIK from any JSON value without ever echoing it: a wrong type is [`NIK_RULE`] too
    /// (serde's own message would quote the number, which may be a whole NIK).
    ///
    /// # Errors
    /// [`NIK_RULE`] when it is not a string of 16 digits.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, &'static str> {
        value.as_str().map_or(Err(NIK_RULE), Self::parse)
    }

    /// The 16 digits. Call it only to encrypt, to hash, or to hand the NIK to SATUSEHAT.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The 16 digits (the name the SATUSEHAT bridge used before [`Nik::expose`]).
    pub fn as_str(&self) -> &str {
        self.expose()
    }

    /// Twelve stars and the last four digits (`************8901`): what answers may show.
    pub fn masked(&self) -> String {
        format!("************{}", &self.0[12..])
    }
}

impl std::fmt::Debug for Nik {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nik({})", self.masked())
    }
}

impl std::fmt::Display for Nik {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl TryFrom<String> for Nik {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Nik> for String {
    fn from(nik: Nik) -> Self {
        nik.0
    }
}

#[cfg(test)]
mod tests {
    use super::Nik;

    #[test]
    fn sixteen_digits_and_never_printed_whole() {
        assert_eq!(
            Nik::parse("3171 0101 0101 0001").map(|n| n.expose().to_owned()),
            Ok("3171010101010001".to_owned())
        );
        for bad in [
            "317101010101000",
            "31710101010100011",
            "317101010101000x",
            "３１７１０１０１０１０１０００１",
            "",
        ] {
            assert!(Nik::parse(bad).is_err(), "{bad}");
        }
        let nik = Nik::parse("3171010101010001").expect("valid");
        assert_eq!(format!("{nik:?}"), "Nik(************0001)");
        assert_eq!(nik.to_string(), "************0001");
        assert_eq!(format!("{:?}", Some(&nik)), "Some(Nik(************0001))");
    }
}
