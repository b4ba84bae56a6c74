//! The built-in first-aid pages (CPR, choking, bleeding, burns, seizures, while waiting), in
//! Bahasa Indonesia and English, from `cms/content/`. [`load`] stores each page that has no
//! version yet in its language and leaves pages that admins or trainers wrote alone, so it is
//! safe to run at every start of `kreki demo`.

use sqlx::PgPool;

use crate::domain::{Lang, PageEdit, Slug};
use crate::error::{CmsError, CmsResult};
use crate::store;

/// One built-in page: slug, kinds, and (title, Markdown) in Indonesian, then English.
struct Builtin {
    slug: &'static str,
    kinds: &'static [&'static str],
    id: (&'static str, &'static str),
    en: (&'static str, &'static str),
}

const ALL_KINDS: &[&str] = &[
    "medical",
    "cardiac_arrest",
    "accident",
    "fire",
    "disaster",
    "security",
    "other",
];

const PAGES: &[Builtin] = &[
    Builtin {
        slug: "cpr",
        kinds: &["cardiac_arrest"],
        id: (
            "RJP: tekan dada keras dan cepat",
            include_str!("../content/cpr.id.md"),
        ),
        en: (
            "CPR: push hard and fast",
            include_str!("../content/cpr.en.md"),
        ),
    },
    Builtin {
        slug: "choking",
        kinds: &["medical"],
        id: ("Tersedak", include_str!("../content/choking.id.md")),
        en: ("Choking", include_str!("../content/choking.en.md")),
    },
    Builtin {
        slug: "bleeding",
        kinds: &["accident", "medical", "disaster"],
        id: (
            "Perdarahan hebat",
            include_str!("../content/bleeding.id.md"),
        ),
        en: ("Heavy bleeding", include_str!("../content/bleeding.en.md")),
    },
    Builtin {
        slug: "burns",
        kinds: &["fire", "accident"],
        id: ("Luka bakar", include_str!("../content/burns.id.md")),
        en: ("Burns", include_str!("../content/burns.en.md")),
    },
    Builtin {
        slug: "seizures",
        kinds: &["medical"],
        id: ("Kejang", include_str!("../content/seizures.id.md")),
        en: ("Seizures", include_str!("../content/seizures.en.md")),
    },
    Builtin {
        slug: "while-waiting",
        kinds: ALL_KINDS,
        id: (
            "Sambil menunggu bantuan",
            include_str!("../content/while-waiting.id.md"),
        ),
        en: (
            "While help is coming",
            include_str!("../content/while-waiting.en.md"),
        ),
    },
];

/// Stores every built-in page missing in its language; answers how many versions were stored.
///
/// # Errors
/// Database errors ([`CmsError::Validation`] would mean a built-in page breaks the rules: a test
/// guards against that).
pub async fn load(pool: &PgPool) -> CmsResult<usize> {
    let mut stored = 0;
    for page in PAGES {
        let slug = Slug::parse(page.slug).map_err(|why| CmsError::field("slug", why))?;
        let kinds: Vec<String> = page.kinds.iter().map(|k| (*k).to_owned()).collect();
        for (lang, (title, body)) in [(Lang::Id, page.id), (Lang::En, page.en)] {
            if store::exists(pool, &slug, lang).await? {
                continue;
            }
            let edit = PageEdit::parse(lang.as_str(), title, body, &kinds)
                .map_err(CmsError::Validation)?;
            let html = crate::markdown::to_safe_html(&edit.body_markdown);
            let mut tx = pool.begin().await?;
            store::put(&mut tx, &slug, &edit, &html, None).await?;
            tx.commit().await?;
            stored += 1;
        }
    }
    Ok(stored)
}

/// The slugs of the built-in pages.
pub fn slugs() -> impl Iterator<Item = &'static str> {
    PAGES.iter().map(|page| page.slug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_page_keeps_the_rules() {
        for page in PAGES {
            assert!(Slug::parse(page.slug).is_ok(), "{}", page.slug);
            let kinds: Vec<String> = page.kinds.iter().map(|k| (*k).to_owned()).collect();
            for (lang, (title, body)) in [("id", page.id), ("en", page.en)] {
                assert!(
                    PageEdit::parse(lang, title, body, &kinds).is_ok(),
                    "{} {lang}",
                    page.slug
                );
            }
        }
    }
}
