-- First-aid guidance (the CMS), in the `cms` schema: every version of every page in each language
-- is a row; the newest version per (slug, lang) is the page. Rows are never updated or deleted,
-- so the history of what citizens were told stays readable.

CREATE SCHEMA IF NOT EXISTS cms;

CREATE TABLE cms.guidance (
    slug          text NOT NULL,
    lang          text NOT NULL,
    version       integer NOT NULL,
    title         text NOT NULL,
    body_markdown text NOT NULL,
    -- Rendered from body_markdown and sanitised (ammonia) when the version is stored.
    body_html     text NOT NULL,
    -- Alert kinds the page helps with (the citizen app links it after a panic of these kinds).
    kinds         text[] NOT NULL DEFAULT '{}',
    -- The admin or trainer who wrote this version; none for built-in pages.
    author_id     uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (slug, lang, version),
    CONSTRAINT guidance_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,63}$'),
    CONSTRAINT guidance_lang CHECK (lang IN ('id', 'en')),
    CONSTRAINT guidance_version CHECK (version >= 1)
);
