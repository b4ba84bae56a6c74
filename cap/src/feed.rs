//! What a CAP source answers: a single CAP alert, an Atom feed, or an RSS feed. Feed entries
//! either carry the alert inline (Atom `content`) or link to it (`link`); both are returned in
//! feed order, at most `max_entries`, for the poller to apply.

use roxmltree::Node;

use crate::geometry::Area;
use crate::model::CapAlert;
use crate::parse::{self, ATOM_NS, CAP_NS, Limits, Refusal};

/// One entry of a source.
#[derive(Debug)]
pub enum Entry {
    /// An alert carried in the feed itself (or the document was the alert), or why it was refused.
    Inline(Box<Result<CapAlert, Refusal>>),
    /// A link to fetch (absolute http(s) URL).
    Link(String),
}

/// Reads a source's body into its entries.
///
/// # Errors
/// A [`Refusal`] when the body itself is not XML, is hostile, or is neither CAP, Atom nor RSS.
pub fn entries(
    text: &str,
    limits: &Limits,
    max_entries: usize,
    geocodes: &dyn Fn(&str, &str) -> Option<Area>,
) -> Result<Vec<Entry>, Refusal> {
    let doc = parse::document(text, limits)?;
    let root = doc.root_element();
    if root.has_tag_name((CAP_NS, "alert")) {
        return Ok(vec![Entry::Inline(Box::new(parse::alert_from_node(
            root, limits, geocodes,
        )))]);
    }
    if root.has_tag_name((ATOM_NS, "feed")) {
        return Ok(root
            .children()
            .filter(|n| n.has_tag_name((ATOM_NS, "entry")))
            .take(max_entries)
            .filter_map(|entry| atom_entry(entry, limits, geocodes))
            .collect());
    }
    if root.has_tag_name("rss") {
        let items = root
            .children()
            .filter(|n| n.has_tag_name("channel"))
            .flat_map(|channel| channel.children().filter(|n| n.has_tag_name("item")));
        return Ok(items
            .take(max_entries)
            .filter_map(|item| {
                item.children()
                    .find(|n| n.has_tag_name("link"))
                    .and_then(|link| link.text())
                    .map(str::trim)
                    .filter(|href| is_http(href))
                    .map(|href| Entry::Link(href.to_owned()))
            })
            .collect());
    }
    Err(Refusal::NotCap(format!(
        "neither a CAP 1.2 alert, an Atom feed nor RSS: the root is `{}`",
        root.tag_name().name()
    )))
}

fn is_http(href: &str) -> bool {
    href.starts_with("http://") || href.starts_with("https://")
}

fn atom_entry(
    entry: Node<'_, '_>,
    limits: &Limits,
    geocodes: &dyn Fn(&str, &str) -> Option<Area>,
) -> Option<Entry> {
    let inline = entry
        .children()
        .filter(|n| n.has_tag_name((ATOM_NS, "content")))
        .flat_map(|content| content.children())
        .find(|n| n.has_tag_name((CAP_NS, "alert")));
    if let Some(alert) = inline {
        return Some(Entry::Inline(Box::new(parse::alert_from_node(
            alert, limits, geocodes,
        ))));
    }
    let links: Vec<Node<'_, '_>> = entry
        .children()
        .filter(|n| n.has_tag_name((ATOM_NS, "link")))
        .collect();
    let cap = links
        .iter()
        .find(|l| l.attribute("type") == Some("application/cap+xml"))
        .or_else(|| {
            links
                .iter()
                .find(|l| l.attribute("rel").is_none_or(|rel| rel == "alternate"))
        })?;
    cap.attribute("href")
        .filter(|href| is_http(href))
        .map(|href| Entry::Link(href.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str, _: &str) -> Option<Area> {
        None
    }

    #[test]
    fn atom_rss_and_single_documents_are_told_apart() {
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>
          <entry><link rel="alternate" type="application/cap+xml" href="http://x/a.xml"/></entry>
          <entry><link href="ftp://x/b.xml"/></entry></feed>"#;
        let found = entries(atom, &Limits::default(), 10, &none).expect("atom");
        assert!(matches!(&found[..], [Entry::Link(href)] if href == "http://x/a.xml"));
        let rss = r#"<rss version="2.0"><channel><item><link> https://x/c.xml </link></item></channel></rss>"#;
        let found = entries(rss, &Limits::default(), 10, &none).expect("rss");
        assert!(matches!(&found[..], [Entry::Link(href)] if href == "https://x/c.xml"));
        assert!(entries("<html/>", &Limits::default(), 10, &none).is_err());
    }
}
