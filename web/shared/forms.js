// Forms and the server's field errors: a 422 problem+json names each wrong field (`title`,
// `modules[0].quizzes[1].pass_mark_pct`, `waves[2].radius_m`); `showProblem` puts each message
// right beside its input (found by `data-field`, else by `name`, else the nearest field that
// holds it), marks the input invalid and
// links the message to it for screen readers. Messages that match no input go to the form's
// own message line. The text is the server's, so what the API says is what people read (the
// common messages in Indonesian when the page is: field-errors.js).
import { lang, t } from '/web/shared/i18n.js';
import { fieldMessage } from '/web/shared/field-errors.js';

/** Removes every field error shown in `root`. */
export function clearFieldErrors(root) {
  for (const message of root.querySelectorAll('.field-error')) message.remove();
  for (const input of root.querySelectorAll('[aria-invalid="true"]')) {
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
  }
}

/** The input of `field`, else of the nearest field holding it (`required_certifications[1]` goes
 *  beside `required_certifications`, `hours[2]` beside the hours), else null. */
function inputFor(root, field) {
  for (let name = field; name; name = holder(name)) {
    const escaped = CSS.escape(name);
    const input = root.querySelector(`[data-field="${escaped}"]`) ?? root.querySelector(`[name="${escaped}"]`);
    if (input) return input;
  }
  return null;
}

/** The field that holds `field`: `waves[2].radius_m` -> `waves[2]` -> `waves` -> ''. */
function holder(field) {
  const cut = Math.max(field.lastIndexOf('.'), field.lastIndexOf('['));
  return cut > 0 ? field.slice(0, cut) : '';
}

let counter = 0;

/**
 * Shows what went wrong with a request made from `root` (a form or section): field errors beside
 * their inputs, anything else in `message` (an element). Answers true when some field was named.
 */
export function showProblem(root, failure, message) {
  clearFieldErrors(root);
  const errors = failure?.problem?.errors ?? [];
  const unplaced = [];
  for (const error of errors) {
    const input = inputFor(root, error.field);
    if (!input) {
      unplaced.push(`${error.field}: ${fieldMessage(error.message, lang())}`);
      continue;
    }
    counter += 1;
    const note = document.createElement('p');
    note.className = 'field-error';
    note.id = `field-error-${counter}`;
    note.dataset.for = error.field;
    note.setAttribute('role', 'alert');
    // In Indonesian when the page is (the common messages); the server's words stay on the element.
    note.textContent = fieldMessage(error.message, lang());
    note.dataset.server = error.message;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', note.id);
    (input.closest('label') ?? input).insertAdjacentElement('afterend', note);
  }
  if (message) {
    let text = '';
    if (errors.length && !unplaced.length) text = t('common.error.form');
    else if (unplaced.length) text = unplaced.join('; ');
    else if (failure?.status === 0) text = t('common.error.network');
    else if ([404, 405, 501].includes(failure?.status) && !failure?.problem?.detail) text = t('common.error.unavailable', { status: failure.status });
    else text = t('common.error.generic', { detail: failure?.message ?? String(failure) });
    say(message, text, false);
  }
  const first = root.querySelector('[aria-invalid="true"]');
  first?.focus?.();
  return errors.length > unplaced.length;
}

/** Shows `text` in a message element, green when `ok`; hides it when empty. */
export function say(element, text, ok = true) {
  element.textContent = text;
  element.hidden = !text;
  element.className = `message ${ok ? 'ok' : 'error'}`;
}
