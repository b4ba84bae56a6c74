// What the trainer and admin consoles share: the sign-in for one role, the signed-in layout
// (`#signin`, `#console`, `#who`, `#signout`), and the page's error line (`#error`).
import { signInForm } from '/web/shared/api.js';
import { applyI18n, t } from '/web/shared/i18n.js';

const $ = (id) => document.getElementById(id);

/**
 * Opens a console for `role` (null: any account) : signs in (or goes on with the stored session), then calls `load()`.
 * Answers `error(text)`, which shows (or, with '', hides) the page's error line.
 */
export function openConsole(api, role, load) {
  function error(text) {
    $('error').textContent = text;
    $('error').hidden = !text;
  }
  function show(signedIn) {
    $('signin').hidden = signedIn;
    $('console').hidden = !signedIn;
    $('signout').hidden = !signedIn;
    $('who').textContent = signedIn ? api.user?.name ?? '' : '';
    applyI18n();
  }
  async function start() {
    show(true);
    error('');
    await load();
  }
  api.onSignedOut = () => show(false);
  signInForm($('signin-form'), api, { role: role ?? undefined, onError: (key, vars) => error(t(key, vars)), done: () => start() });
  $('signout').addEventListener('click', async () => {
    await api.signOut();
    location.reload();
  });
  if (api.session && (!role || api.hasRole(role))) start();
  else show(false);
  return { error };
}
