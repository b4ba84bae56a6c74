//! The printable certificate: one self-contained HTML page (inline CSS, no scripts, no external
//! assets) with the holder, the certification, the period in Asia/Jakarta time, the verification
//! code, the public verify link and its QR code (an inline SVG drawn here from the link).
//! Everything interpolated is HTML-escaped.

use chrono::{DateTime, FixedOffset, Offset, Utc};

use crate::domain::CertificateStatus;
use crate::service::{Certificate, Certification, Verification};

/// Asia/Jakarta (WIB) is UTC+7 all year (no daylight saving), which is what people read.
fn wib(at: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| Utc.fix());
    at.with_timezone(&offset).format("%d-%m-%Y").to_string()
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// The verify link printed on a certificate.
pub fn verify_url(public_base_url: &str, code: &str) -> String {
    format!("{public_base_url}/v1/lms/certificates/verify/{code}")
}

/// `url` as a QR code in SVG (black on white, a quiet zone around it), what a phone's camera
/// opens: the public verify page. `None` only for data too long for a QR code.
pub fn qr_svg(url: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

/// The HTML page of `certificate`.
pub fn render(
    certificate: &Certificate,
    certification: &Certification,
    public_base_url: &str,
) -> String {
    let url = verify_url(public_base_url, &certificate.code);
    let status_note = match certificate.status {
        CertificateStatus::Valid => "",
        CertificateStatus::Expired => "<p class=\"void\">KEDALUWARSA / EXPIRED</p>",
        CertificateStatus::Revoked => "<p class=\"void\">DICABUT / REVOKED</p>",
        CertificateStatus::Pending => "<p class=\"void\">BELUM BERLAKU / NOT YET VALID</p>",
    };
    format!(
        r#"<!doctype html>
<html lang="id">
<head>
<meta charset="utf-8">
<title>Sertifikat {certification_name} — {holder}</title>
<style>
  @page {{ size: A4 landscape; margin: 12mm; }}
  body {{ font-family: Georgia, "Times New Roman", serif; color: #1a1a1a; margin: 0; }}
  .frame {{ border: 6px double #8b0000; padding: 28px 40px; text-align: center; min-height: 150mm; }}
  h1 {{ font-size: 30px; letter-spacing: 2px; margin: 8px 0 0; }}
  .en {{ color: #555; font-style: italic; font-size: 14px; }}
  .holder {{ font-size: 34px; margin: 24px 0 6px; border-bottom: 1px solid #999; display: inline-block; padding: 0 30px; }}
  .cert {{ font-size: 22px; margin: 14px 0; }}
  .period {{ font-size: 15px; margin: 10px 0; }}
  .code {{ font-family: "Courier New", monospace; font-size: 18px; letter-spacing: 1px; margin-top: 22px; }}
  .void {{ color: #b00; font-size: 26px; font-weight: bold; border: 3px solid #b00; display: inline-block; padding: 4px 16px; }}
  .small {{ font-size: 12px; color: #444; word-break: break-all; }}
  .qr svg {{ width: 32mm; height: 32mm; }}
</style>
</head>
<body>
<div class="frame">
  <p>KREKI — Relawan Tanggap Darurat Indonesia</p>
  <h1>SERTIFIKAT</h1>
  <p class="en">Certificate</p>
  {status_note}
  <p>Diberikan kepada / Awarded to</p>
  <p class="holder">{holder}</p>
  <p>atas kelulusan / for completing</p>
  <p class="cert">{certification_name}</p>
  <p class="period">Berlaku {issued} s.d. {expires} (WIB) &middot; Valid {issued} to {expires}</p>
  <p class="code">Kode verifikasi / Verification code: {code}</p>
  <p class="small">Periksa keaslian di / Verify at: <a href="{url}">{url}</a></p>
  <div class="qr" aria-label="QR: {url}">{qr}</div>
</div>
</body>
</html>
"#,
        certification_name = escape(&certification.name),
        holder = escape(&certificate.holder_name),
        issued = wib(certificate.issued_at),
        expires = wib(certificate.expires_at),
        code = escape(&certificate.code),
        qr = qr_svg(&url).unwrap_or_default(),
        url = escape(&url),
    )
}

/// The page a person sees when they open a certificate's verify link in a browser: the same facts
/// as the JSON answer, in words. `verification` is `None` for a code nobody was given.
pub fn verification_page(code: &str, verification: Option<&Verification>) -> String {
    let (verdict, class, details) = match verification {
        None => ("Kode tidak dikenal / Unknown code", "bad", String::new()),
        Some(v) => {
            let verdict = match v.status {
                CertificateStatus::Valid => ("SAH / VALID", "good"),
                CertificateStatus::Expired => ("KEDALUWARSA / EXPIRED", "bad"),
                CertificateStatus::Revoked => ("DICABUT / REVOKED", "bad"),
                CertificateStatus::Pending => ("BELUM BERLAKU / NOT YET VALID", "bad"),
            };
            (
                verdict.0,
                verdict.1,
                format!(
                    "<p><b>{holder}</b></p><p>{name}</p><p>Berlaku {issued} s.d. {expires} (WIB) &middot; Valid {issued} to {expires}</p>",
                    holder = escape(&v.holder_name),
                    name = escape(&v.certification_name),
                    issued = wib(v.issued_at),
                    expires = wib(v.expires_at),
                ),
            )
        }
    };
    format!(
        r#"<!doctype html>
<html lang="id">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verifikasi sertifikat KREKI</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem; }}
  .good {{ color: #0a6b2d; }} .bad {{ color: #b00; }}
  code {{ font-size: 1.1rem; }}
</style>
</head>
<body>
<h1>Verifikasi sertifikat / Certificate check</h1>
<p><code>{code}</code></p>
<h2 class="{class}">{verdict}</h2>
{details}
</body>
</html>
"#,
        code = escape(code),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg() {
        let svg = qr_svg("https://kreki.example.id/v1/lms/certificates/verify/ABC").expect("fits");
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
        assert!(qr_svg(&"x".repeat(5000)).is_none());
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<b>\"Sari\" & 'Budi'</b>"),
            "&lt;b&gt;&quot;Sari&quot; &amp; &#39;Budi&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn dates_are_shown_in_jakarta_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T20:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(wib(at), "22-11-2026");
    }
}
