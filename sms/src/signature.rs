//! Twilio's webhook signature (`X-Twilio-Signature`): base64 of HMAC-SHA1, keyed with the account's
//! auth token, over the full URL Twilio requested followed by every form field's name and value,
//! sorted by name (for a `POST` with `application/x-www-form-urlencoded` body).
//!
//! The URL must be the one Twilio used (scheme, host, port, path, query), which behind a proxy is
//! not what `kreki` sees: `sms.public_base_url` says it. The comparison is constant-time
//! ([`hmac::Mac::verify_slice`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header Twilio puts its signature in.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Twilio sorts by name, and for a repeated name keeps the values in sorted order too.
    sorted.sort();
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The signature Twilio sends for a `POST` of `params` to `url`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `signature` (the header's value) is Twilio's for `params` posted to `url`. A missing,
/// malformed or wrong signature is simply `false`.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(auth_token, url, params).verify_slice(&given).is_ok()
}

/// The fields of a form body, in order, decoded.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The worked example of Twilio's security documentation.
    #[test]
    fn matches_twilios_documented_example() {
        let params = fields(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let token = "12345";
        assert_eq!(sign(token, url, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify(token, url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn order_of_fields_does_not_matter_but_everything_else_does() {
        let url = "https://kreki.example/v1/sms/inbound";
        let a = fields(&[("Body", "1 K7Q"), ("From", "+6281234567890")]);
        let b = fields(&[("From", "+6281234567890"), ("Body", "1 K7Q")]);
        let signature = sign("secret", url, &a);
        assert!(verify("secret", url, &b, &signature));
        assert!(!verify("other", url, &b, &signature));
        assert!(!verify(
            "secret",
            "https://kreki.example/v1/sms/status",
            &b,
            &signature
        ));
        let tampered = fields(&[("Body", "2 K7Q"), ("From", "+6281234567890")]);
        assert!(!verify("secret", url, &tampered, &signature));
        assert!(!verify("secret", url, &a, "not base64!"));
        assert!(!verify("secret", url, &a, ""));
    }
}
