//! Markdown to safe HTML: CommonMark (with tables and strikethrough) rendered by pulldown-cmark,
//! then cleaned by ammonia, which keeps only a whitelist of tags and attributes, drops scripts,
//! event handlers, `javascript:` URLs and styles, and marks links `rel="noopener noreferrer"`.
//! Raw HTML in the Markdown goes through the same cleaning, so an author cannot inject script.

use pulldown_cmark::{Options, Parser, html};

/// Renders `markdown` to HTML that is safe to put into a page as it is.
pub fn to_safe_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let parser = Parser::new_ext(markdown, options);
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, parser);
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer"))
        .url_schemes(["http", "https", "mailto", "tel"].into_iter().collect())
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::to_safe_html;

    #[test]
    fn markdown_becomes_html() {
        let html = to_safe_html("# Judul\n\n1. **Tekan** dada\n2. [112](tel:112)\n");
        assert!(html.contains("<h1>Judul</h1>"), "{html}");
        assert!(html.contains("<strong>Tekan</strong>"), "{html}");
        assert!(html.contains("href=\"tel:112\""), "{html}");
    }

    #[test]
    fn script_never_survives() {
        for evil in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[klik](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
            "<svg><script>alert(1)</script></svg>",
        ] {
            let html = to_safe_html(evil);
            let lower = html.to_lowercase();
            for bad in [
                "<script",
                "onerror",
                "javascript:",
                "<iframe",
                "style=",
                "<svg",
            ] {
                assert!(!lower.contains(bad), "{evil} -> {html}");
            }
        }
    }

    #[test]
    fn links_open_safely_and_images_stay() {
        let html = to_safe_html("[WHO](https://who.int) ![tangan](/web/shared/icon.svg)");
        assert!(html.contains("rel=\"noopener noreferrer\""), "{html}");
        assert!(
            html.contains("<img src=\"/web/shared/icon.svg\" alt=\"tangan\""),
            "{html}"
        );
    }
}
