// First-aid guidance for the apps (GET /v1/guidance, public): fetched while online and kept in
// localStorage, so a page opens without a network right after a panic, when it matters most.
// Pages arrive as sanitised HTML from the server (pulldown-cmark, then ammonia).
import { lang } from '/web/shared/i18n.js';

const KEY = (l) => `kreki.guidance.${l}`;

function stored(l) {
  try {
    return JSON.parse(localStorage.getItem(KEY(l)) || '{"list":[],"pages":{}}');
  } catch {
    return { list: [], pages: {} };
  }
}

function keep(l, value) {
  try {
    localStorage.setItem(KEY(l), JSON.stringify(value));
  } catch {
    // Storage full: the pages still open while online.
  }
}

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10000) });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

/** Fetches every page in the current language and keeps them for offline use; best effort. */
export async function prefetchGuidance() {
  const l = lang();
  try {
    const list = await getJson(`/v1/guidance?lang=${l}`);
    const kept = stored(l);
    const pages = {};
    await Promise.all(list.map(async (item) => {
      const old = kept.pages[item.slug];
      pages[item.slug] = old && old.version === item.version && old.lang === item.lang
        ? old : await getJson(`/v1/guidance/${encodeURIComponent(item.slug)}?lang=${l}`);
    }));
    keep(l, { list, pages });
    return true;
  } catch {
    return false;
  }
}

/** The pages for an alert kind (from the network, else the kept copy). */
export async function guidanceFor(kind) {
  const l = lang();
  try {
    return await getJson(`/v1/guidance?lang=${l}&kind=${encodeURIComponent(kind)}`);
  } catch {
    return stored(l).list.filter((page) => page.kinds.includes(kind));
  }
}

/** One page (network first, then the kept copy); null when neither has it. */
export async function guidancePage(slug) {
  const l = lang();
  try {
    const page = await getJson(`/v1/guidance/${encodeURIComponent(slug)}?lang=${l}`);
    const kept = stored(l);
    kept.pages[slug] = page;
    keep(l, kept);
    return page;
  } catch {
    return stored(l).pages[slug] ?? null;
  }
}
