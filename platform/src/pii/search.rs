//! The search hash of a NIK, and how its key rotates without the NIK.
//!
//! A lookup by NIK compares keyed hashes, never digits: HMAC-SHA256 of the digits under
//! `pii.search_key`. Rotation wraps: each key of `pii.search_wrap_keys` (oldest first) is applied
//! to the hash before it, `h_i = HMAC(k_i, h_{i-1})`, so a stored hash moves to a new key without
//! the NIK (a verified practitioner's NIK is dropped after verification; only the hash stays). A
//! search key that leaked stops mattering once every row is wrapped: the database then holds only
//! hashes under the newer key, which the leaked one cannot recompute.
//!
//! Each stored hash starts with a 4-byte fingerprint of the chain it was made under, so the reseal
//! batch finds the rows to wrap and wraps each from where it is; a lookup tries every level of the
//! chain, so rows not wrapped yet are still found.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{KEY_BYTES, Nik};

/// Length of a chain's fingerprint at the front of each stored hash, bytes.
pub const FINGERPRINT_BYTES: usize = 4;
/// Length of HMAC-SHA256, bytes.
const MAC_BYTES: usize = 32;
/// Length of a stored search hash: the chain's fingerprint, then the HMAC.
pub const HASH_BYTES: usize = FINGERPRINT_BYTES + MAC_BYTES;

/// A NIK's search hash under the current chain, behind the chain's fingerprint: equal NIKs give
/// equal hashes, and without the keys nobody can try the (small, structured) space of NIKs
/// against it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NikHash([u8; HASH_BYTES]);

impl NikHash {
    /// The fingerprint and the HMAC, for a `bytea` column.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The HMAC alone (what the idempotency digest of a request mixes in).
    pub fn mac(&self) -> &[u8] {
        &self.0[FINGERPRINT_BYTES..]
    }
}

impl std::fmt::Debug for NikHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NikHash(..)")
    }
}

/// The search key and its wraps, with each level's fingerprint.
pub(super) struct SearchChain {
    /// `keys[0]` is `pii.search_key`; the others wrap it, oldest first.
    keys: Vec<[u8; KEY_BYTES]>,
    /// `fingerprints[i]`: of the chain up to `keys[i]`.
    fingerprints: Vec<[u8; FINGERPRINT_BYTES]>,
}

impl SearchChain {
    pub(super) fn new(base: [u8; KEY_BYTES], wraps: &[[u8; KEY_BYTES]]) -> Self {
        let keys: Vec<[u8; KEY_BYTES]> =
            std::iter::once(base).chain(wraps.iter().copied()).collect();
        let mut fingerprints = Vec::with_capacity(keys.len());
        let mut previous: Vec<u8> = Vec::new();
        for key in &keys {
            let mut label = b"kreki/nik/search-chain".to_vec();
            label.extend_from_slice(&previous);
            let mut fingerprint = [0_u8; FINGERPRINT_BYTES];
            fingerprint.copy_from_slice(&hmac(key, &label)[..FINGERPRINT_BYTES]);
            previous = fingerprint.to_vec();
            fingerprints.push(fingerprint);
        }
        Self { keys, fingerprints }
    }

    /// The same search key with `wraps` instead of this chain's.
    pub(super) fn with_wraps(&self, wraps: &[[u8; KEY_BYTES]]) -> Self {
        Self::new(self.keys[0], wraps)
    }

    fn top(&self) -> usize {
        self.keys.len() - 1
    }

    /// The fingerprint new hashes carry.
    pub(super) fn current_fingerprint(&self) -> [u8; FINGERPRINT_BYTES] {
        self.fingerprints[self.top()]
    }

    /// The HMAC of `nik` at every level of the chain, the base first.
    fn macs(&self, nik: &Nik) -> Vec<[u8; MAC_BYTES]> {
        let mut macs = Vec::with_capacity(self.keys.len());
        let mut mac = hmac(&self.keys[0], nik.expose().as_bytes());
        macs.push(mac);
        for key in &self.keys[1..] {
            mac = hmac(key, &mac);
            macs.push(mac);
        }
        macs
    }

    /// `nik`'s hash under the whole chain.
    pub(super) fn hash(&self, nik: &Nik) -> NikHash {
        let macs = self.macs(nik);
        stored(self.current_fingerprint(), &macs[self.top()])
    }

    /// Every form `nik`'s hash may be stored in: at each level of the chain (rows the reseal batch
    /// has not wrapped yet), and the bare base HMAC of rows written before hashes carried a
    /// fingerprint.
    pub(super) fn lookup(&self, nik: &Nik) -> Vec<Vec<u8>> {
        let macs = self.macs(nik);
        let mut forms: Vec<Vec<u8>> = macs
            .iter()
            .zip(&self.fingerprints)
            .rev()
            .map(|(mac, fingerprint)| stored(*fingerprint, mac).as_bytes().to_vec())
            .collect();
        forms.push(macs[0].to_vec());
        forms
    }

    /// A stored hash moved to the current chain without the NIK: `Ok(None)` when it is current,
    /// `Err(())` when it was made under keys not in this chain.
    pub(super) fn rewrap(&self, stored_hash: &[u8]) -> Result<Option<NikHash>, ()> {
        let (level, mac) = match stored_hash.len() {
            // Written before hashes carried a fingerprint: the base HMAC.
            MAC_BYTES => (0, stored_hash),
            HASH_BYTES => {
                let (fingerprint, mac) = stored_hash.split_at(FINGERPRINT_BYTES);
                let level = self
                    .fingerprints
                    .iter()
                    .position(|known| known.as_slice() == fingerprint)
                    .ok_or(())?;
                if level == self.top() {
                    return Ok(None);
                }
                (level, mac)
            }
            _ => return Err(()),
        };
        let mut mac: [u8; MAC_BYTES] = mac.try_into().map_err(|_| ())?;
        for key in &self.keys[level + 1..] {
            mac = hmac(key, &mac);
        }
        Ok(Some(stored(self.current_fingerprint(), &mac)))
    }
}

fn stored(fingerprint: [u8; FINGERPRINT_BYTES], mac: &[u8; MAC_BYTES]) -> NikHash {
    let mut hash = [0_u8; HASH_BYTES];
    hash[..FINGERPRINT_BYTES].copy_from_slice(&fingerprint);
    hash[FINGERPRINT_BYTES..].copy_from_slice(mac);
    NikHash(hash)
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac(key: &[u8; KEY_BYTES], data: &[u8]) -> [u8; MAC_BYTES] {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        // HMAC takes keys of any length.
        unreachable!("HMAC accepts a 32-byte key");
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nik() -> Nik {
        Nik::parse("3171012345678901").expect("a NIK")
    }

    #[test]
    fn a_wrapped_hash_equals_one_made_under_the_longer_chain() {
        let (k0, k1, k2) = ([1_u8; 32], [2_u8; 32], [3_u8; 32]);
        let one = SearchChain::new(k0, &[]);
        let three = SearchChain::new(k0, &[k1, k2]);
        let old = one.hash(&nik());
        let wrapped = three.rewrap(old.as_bytes()).expect("known").expect("moved");
        assert_eq!(wrapped, three.hash(&nik()));
        assert_eq!(
            three.rewrap(wrapped.as_bytes()),
            Ok(None),
            "current already"
        );
        // From the middle of the chain too, and from a bare HMAC of before fingerprints.
        let two = SearchChain::new(k0, &[k1]);
        assert_eq!(
            three.rewrap(two.hash(&nik()).as_bytes()),
            Ok(Some(three.hash(&nik())))
        );
        assert_eq!(three.rewrap(old.mac()), Ok(Some(three.hash(&nik()))));
    }

    #[test]
    fn a_lookup_finds_the_nik_at_every_level_and_nothing_else() {
        let (k0, k1) = ([1_u8; 32], [2_u8; 32]);
        let one = SearchChain::new(k0, &[]);
        let two = SearchChain::new(k0, &[k1]);
        let forms = two.lookup(&nik());
        for stored in [two.hash(&nik()), one.hash(&nik())] {
            assert!(forms.contains(&stored.as_bytes().to_vec()));
        }
        assert!(forms.contains(&one.hash(&nik()).mac().to_vec()));
        let other = Nik::parse("3171012345678902").expect("a NIK");
        assert!(!forms.contains(&two.hash(&other).as_bytes().to_vec()));
    }

    #[test]
    fn hashes_of_unknown_keys_are_refused_not_guessed() {
        let chain = SearchChain::new([1_u8; 32], &[[2_u8; 32]]);
        let stranger = SearchChain::new([9_u8; 32], &[]);
        assert_eq!(chain.rewrap(stranger.hash(&nik()).as_bytes()), Err(()));
        assert_eq!(chain.rewrap(&[0_u8; 7]), Err(()));
        assert_ne!(
            chain.current_fingerprint(),
            SearchChain::new([1_u8; 32], &[]).current_fingerprint()
        );
    }
}
