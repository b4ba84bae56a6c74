//! Certification sets as 64-bit masks, so "holds every required certification" costs one AND on the
//! matcher's hot path.
//!
//! Codes (`bls`, `first_aid`, `fire_basic`, and whatever admins add later) are interned once per
//! process in a table of at most [`MAX_CERT_CODES`] entries: bit `i` of a [`CertSet`] means the
//! `i`-th code interned. The table only grows; a code keeps its bit for the life of the process, so
//! sets made at different times stay comparable. Interning takes a lock; testing sets does not.

use std::fmt;
use std::sync::{PoisonError, RwLock};

/// How many distinct certification codes one process can know. Reaching it is an error from
/// [`CertSet::from_codes`], not a silent loss.
pub const MAX_CERT_CODES: usize = 64;

/// Longest accepted certification code, in bytes.
pub const MAX_CERT_CODE_LEN: usize = 64;

/// The process-wide code table: position = bit.
static CODES: RwLock<Vec<Box<str>>> = RwLock::new(Vec::new());

/// Why a set of certification codes was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// A code is empty, longer than [`MAX_CERT_CODE_LEN`], or has characters other than `a-z`,
    /// `0-9` and `_`.
    #[error("certification code {0:?} must be 1 to 64 characters of a-z, 0-9 and _")]
    InvalidCode(String),
    /// The process already knows [`MAX_CERT_CODES`] codes and this one is new.
    #[error("more than 64 distinct certification codes; {0:?} cannot be added")]
    TableFull(String),
}

/// A set of certification codes, as a bitmask over the process-wide code table.
///
/// `Copy` and 8 bytes, so it lives inline in the matcher's index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CertSet(u64);

impl CertSet {
    /// The empty set: requires nothing, or holds nothing.
    pub const EMPTY: Self = Self(0);

    /// The set of these codes, interning the ones not seen before.
    ///
    /// # Errors
    /// [`CertError::InvalidCode`] for a malformed code, [`CertError::TableFull`] when a new code
    /// would be the 65th.
    pub fn from_codes<S: AsRef<str>>(codes: &[S]) -> Result<Self, CertError> {
        let mut bits = 0;
        for code in codes {
            bits |= 1 << intern(code.as_ref())?;
        }
        Ok(Self(bits))
    }

    /// True when `self` holds every code of `required` (always true for an empty `required`).
    #[inline]
    pub fn contains_all(self, required: Self) -> bool {
        self.0 & required.0 == required.0
    }

    /// True when the set holds no code.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of codes in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The codes in the set, in interning order.
    pub fn codes(self) -> Vec<String> {
        let table = CODES.read().unwrap_or_else(PoisonError::into_inner);
        table
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, code)| code.to_string())
            .collect()
    }
}

impl fmt::Debug for CertSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.codes()).finish()
    }
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CERT_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The bit of `code`, interning it when new.
fn intern(code: &str) -> Result<u32, CertError> {
    if !valid_code(code) {
        return Err(CertError::InvalidCode(code.to_owned()));
    }
    let position = |table: &[Box<str>]| table.iter().position(|known| &**known == code);
    {
        let table = CODES.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(bit) = position(&table) {
            return Ok(bit as u32);
        }
    }
    let mut table = CODES.write().unwrap_or_else(PoisonError::into_inner);
    // Another thread may have added it between the two locks.
    if let Some(bit) = position(&table) {
        return Ok(bit as u32);
    }
    if table.len() >= MAX_CERT_CODES {
        return Err(CertError::TableFull(code.to_owned()));
    }
    table.push(code.into());
    Ok((table.len() - 1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(codes: &[&str]) -> CertSet {
        CertSet::from_codes(codes).unwrap_or_else(|e| panic!("{codes:?}: {e}"))
    }

    #[test]
    fn contains_all_is_subset() {
        let held = set(&["bls", "first_aid"]);
        assert!(held.contains_all(CertSet::EMPTY));
        assert!(held.contains_all(set(&["bls"])));
        assert!(held.contains_all(set(&["first_aid", "bls"])));
        assert!(!held.contains_all(set(&["bls", "fire_basic"])));
        assert!(!CertSet::EMPTY.contains_all(set(&["bls"])));
    }

    #[test]
    fn same_codes_same_set_and_names_come_back() {
        assert_eq!(
            set(&["bls", "first_aid"]),
            set(&["first_aid", "bls", "bls"])
        );
        let mut codes = set(&["first_aid", "bls"]).codes();
        codes.sort();
        assert_eq!(codes, ["bls", "first_aid"]);
        assert_eq!(set(&["bls", "first_aid"]).len(), 2);
    }

    #[test]
    fn malformed_codes_are_refused() {
        for code in ["", "BLS", "first aid", "é", &"x".repeat(65)] {
            assert_eq!(
                CertSet::from_codes(&[code]),
                Err(CertError::InvalidCode(code.to_owned()))
            );
        }
    }
}
