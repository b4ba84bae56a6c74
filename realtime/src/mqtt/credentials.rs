//! Device identities and secrets, and the broker's files made from the registry.
//!
//! A device's id is also its MQTT username. Its password is random, shown once at registration,
//! and stored only as Mosquitto's own hash (`$7$`: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt,
//! exactly what `mosquitto_passwd` writes), so `kreki mqtt sync-credentials` can write the password
//! file straight from the registry without ever knowing a password. EMQX imports the same hashes
//! (`pbkdf2`, `sha512`, 101 iterations, 64-byte key).

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::Sha512;
use utoipa::ToSchema;
use uuid::Uuid;

use super::topics;

/// What a device does, which decides the one topic it may publish to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = MqttDeviceKind)]
pub enum DeviceKind {
    /// A panic button of a citizen: publishes `kreki/v1/panic/{device_id}`, reads its `/ack`.
    Panic,
    /// A volunteer's location tracker: publishes `kreki/v1/location/{owner user id}`.
    Tracker,
}

impl DeviceKind {
    /// Its name in the database and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Tracker => "tracker",
        }
    }

    /// Parses the database spelling.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "panic" => Some(Self::Panic),
            "tracker" => Some(Self::Tracker),
            _ => None,
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Self::Panic => "pb",
            Self::Tracker => "tr",
        }
    }
}

/// A device id (and MQTT username): `pb-` (panic button) or `tr-` (tracker) and 20 characters of
/// `[a-z0-9]`. Safe in a topic level and in Mosquitto's files: no `/`, `+`, `#`, `:` or spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(as = MqttDeviceId, value_type = String, example = "pb-k3v9x2m4q8w1e7r5t6y0")]
pub struct DeviceId(String);

const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_RANDOM_LEN: usize = 20;

impl DeviceId {
    /// A new random id for a device of `kind` (about 103 bits of randomness).
    pub fn generate(kind: DeviceKind) -> Self {
        let mut rng = rand::rng();
        let mut id = String::with_capacity(3 + ID_RANDOM_LEN);
        id.push_str(kind.id_prefix());
        id.push('-');
        for _ in 0..ID_RANDOM_LEN {
            let index = rng.random_range(0..ID_ALPHABET.len());
            id.push(char::from(ID_ALPHABET[index]));
        }
        Self(id)
    }

    /// Checks the shape of an id from a topic or a path.
    ///
    /// # Errors
    /// Why it is not a device id.
    pub fn parse(id: &str) -> Result<Self, &'static str> {
        let shape_ok = id.len() == 3 + ID_RANDOM_LEN
            && (id.starts_with("pb-") || id.starts_with("tr-"))
            && id.as_bytes()[3..]
                .iter()
                .all(|byte| ID_ALPHABET.contains(byte));
        if shape_ok {
            Ok(Self(id.to_owned()))
        } else {
            Err("must be `pb-` or `tr-` followed by 20 characters a-z, 0-9")
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// PBKDF2 iterations of Mosquitto's `$7$` hashes (what `mosquitto_passwd` 2.0 uses).
pub const MOSQUITTO_ITERATIONS: u32 = 101;
const SALT_BYTES: usize = 12;
const KEY_BYTES: usize = 64;
const PASSWORD_BYTES: usize = 24;

/// A new random device password: 24 random bytes, URL-safe base64 (32 characters).
pub fn generate_password() -> SecretString {
    let mut bytes = [0_u8; PASSWORD_BYTES];
    rand::rng().fill(&mut bytes);
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Mosquitto's hash of `password` with a fresh random salt: `$7$101$<salt>$<key>`.
pub fn mosquitto_hash(password: &str) -> String {
    let mut salt = [0_u8; SALT_BYTES];
    rand::rng().fill(&mut salt);
    mosquitto_hash_with_salt(password, &salt, MOSQUITTO_ITERATIONS)
}

/// Mosquitto's hash of `password` with the given salt and iterations (tests compare it with
/// `mosquitto_passwd`'s output).
pub fn mosquitto_hash_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let key = pbkdf2_hmac_sha512(password.as_bytes(), salt, iterations.max(1));
    format!(
        "$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(key)
    )
}

/// Checks `password` against a `$7$` hash (the same check the broker makes).
pub fn verify_mosquitto_hash(password: &str, hash: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(iterations), Some(salt), Some(key), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt)) = (iterations.parse::<u32>(), STANDARD.decode(salt)) else {
        return false;
    };
    let Ok(expected) = STANDARD.decode(key) else {
        return false;
    };
    let got = pbkdf2_hmac_sha512(password.as_bytes(), &salt, iterations.clamp(1, 1_000_000));
    // Length first, then every byte, without an early exit.
    expected.len() == got.len()
        && expected
            .iter()
            .zip(got.iter())
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// PBKDF2 (RFC 8018) with HMAC-SHA512 and one 64-byte block: the key length Mosquitto uses.
fn pbkdf2_hmac_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_BYTES] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mac = <Hmac<Sha512> as Mac>::new_from_slice(password).unwrap_or_else(|_| unreachable!());
    let mut block = mac.clone();
    block.update(salt);
    block.update(&1_u32.to_be_bytes());
    let mut u: [u8; KEY_BYTES] = block.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut next = mac.clone();
        next.update(&u);
        u = next.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// A live (not revoked) device as the broker's files need it.
#[derive(Debug, Clone)]
pub struct BrokerDevice {
    /// Username.
    pub id: DeviceId,
    /// Who it belongs to (a tracker publishes to its owner's location topic).
    pub owner: Uuid,
    /// Which topics it may use.
    pub kind: DeviceKind,
    /// Its `$7$` hash.
    pub credentials_hash: String,
}

/// The account KREKI's own consumer connects with: reads every device topic, writes acks.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// Its MQTT username (`mqtt.username`).
    pub username: String,
    /// Its `$7$` hash (made from `mqtt.password` by [`mosquitto_hash`]).
    pub credentials_hash: String,
}

/// Mosquitto's `password_file`: one `username:hash` line per live device, plus the service account.
pub fn password_file(service: &ServiceAccount, devices: &[BrokerDevice]) -> String {
    let mut file = String::from("# Written by `kreki mqtt sync-credentials`; do not edit.\n");
    // `writeln!` into a String cannot fail.
    let _ = writeln!(file, "{}:{}", service.username, service.credentials_hash);
    for device in devices {
        let _ = writeln!(file, "{}:{}", device.id, device.credentials_hash);
    }
    file
}

/// Mosquitto's `acl_file`: the service account reads every device topic and writes acks; a panic
/// button may write only `kreki/v1/panic/%u` and read only its `/ack` (a `pattern`, so it needs no
/// line of its own); a tracker may write only its owner's location topic (a line per tracker, since
/// the topic names the owner, not the device). Everything else is denied by Mosquitto's default.
pub fn acl_file(service: &ServiceAccount, devices: &[BrokerDevice]) -> String {
    let mut file = String::from("# Written by `kreki mqtt sync-credentials`; do not edit.\n");
    let _ = writeln!(file, "user {}", service.username);
    let _ = writeln!(file, "topic read {}", topics::PANIC_FILTER);
    let _ = writeln!(file, "topic read {}", topics::LOCATION_FILTER);
    let _ = writeln!(file, "topic write {}", topics::ACK_FILTER);
    for device in devices {
        if device.kind == DeviceKind::Tracker {
            let _ = writeln!(file, "\nuser {}", device.id);
            let _ = writeln!(file, "topic write {}", topics::location(device.owner));
        }
    }
    // Patterns apply to every user, trackers included; the consumer refuses a panic from a device
    // the registry does not know as a live panic button, so a tracker gains nothing from them.
    file.push_str("\n# Every panic button: its own panic topic and its own acknowledgements.\n");
    let _ = writeln!(file, "pattern write {}/%u", topics::PANIC_PREFIX);
    let _ = writeln!(file, "pattern read {}/%u/ack", topics::PANIC_PREFIX);
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_mosquitto_passwd() {
        // `mosquitto_passwd -b pw dev1 secret` (Mosquitto 2.0.11) wrote this line.
        let line = "$7$101$+ydrHZfPWVEUR4Be$pfzFaK5ESpx67fXDecJiX3jvNzXoWrYf3dLilrL9ZvkO5phTbL+ai55gn1Su9ulDuoD/M0DNlwMLQpFHBY3d/g==";
        let salt = STANDARD.decode("+ydrHZfPWVEUR4Be").expect("base64");
        assert_eq!(mosquitto_hash_with_salt("secret", &salt, 101), line);
        assert!(verify_mosquitto_hash("secret", line));
        assert!(!verify_mosquitto_hash("Secret", line));
        assert!(!verify_mosquitto_hash("secret", "$6$abc$def"));
    }

    #[test]
    fn fresh_hashes_verify_and_differ() {
        let password = generate_password();
        let secret = secrecy::ExposeSecret::expose_secret(&password);
        assert_eq!(secret.len(), 32);
        let (a, b) = (mosquitto_hash(secret), mosquitto_hash(secret));
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_mosquitto_hash(secret, &a) && verify_mosquitto_hash(secret, &b));
    }

    #[test]
    fn device_ids_round_trip_and_refuse_topic_characters() {
        for kind in [DeviceKind::Panic, DeviceKind::Tracker] {
            let id = DeviceId::generate(kind);
            assert_eq!(DeviceId::parse(id.as_str()), Ok(id));
        }
        for bad in [
            "",
            "pb-",
            "xx-aaaaaaaaaaaaaaaaaaaa",
            "pb-aaaaaaaaaaaaaaaaaaa+",
            "pb-aaaaaaaaa/aaaaaaaaaa",
            "pb-AAAAAAAAAAAAAAAAAAAA",
            "pb-aaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(DeviceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn acl_lets_each_device_write_only_its_own_topic() {
        let service = ServiceAccount {
            username: "kreki".to_owned(),
            credentials_hash: mosquitto_hash("x"),
        };
        let owner = Uuid::nil();
        let tracker = BrokerDevice {
            id: DeviceId::generate(DeviceKind::Tracker),
            owner,
            kind: DeviceKind::Tracker,
            credentials_hash: mosquitto_hash("y"),
        };
        let acl = acl_file(&service, std::slice::from_ref(&tracker));
        assert!(acl.contains(&format!(
            "user {}\ntopic write kreki/v1/location/{owner}\n",
            tracker.id
        )));
        assert!(acl.contains("pattern write kreki/v1/panic/%u\n"));
        assert!(acl.contains("pattern read kreki/v1/panic/%u/ack\n"));
        let passwords = password_file(&service, std::slice::from_ref(&tracker));
        assert_eq!(passwords.lines().count(), 3);
        assert!(passwords.contains(&format!("{}:$7$101$", tracker.id)));
    }
}
