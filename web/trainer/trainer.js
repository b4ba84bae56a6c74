// The trainer console: author a course (modules, lessons, quizzes with question banks and
// explanations) and publish it, or load a published version's full definition, change it and
// publish the next version (learners already enrolled keep theirs); see who is enrolled and how
// they did; record a certificate earned elsewhere with exactly the contract's body (user_id,
// certification, issued_at, expires_at, evidence: the name comes from KREKI ID); revoke one with a
// reason; and write the first-aid guidance pages. Every refusal shows the server's field error
// beside the field (inputs carry the field's path in `data-field`).
import { Api, esc } from '/web/shared/api.js';
import { clock, initI18n, onLanguage, t } from '/web/shared/i18n.js';
import '/trainer/trainer-text.js';
import { openConsole } from '/web/shared/console.js';
import { clearFieldErrors, say, showProblem } from '/web/shared/forms.js';

const KINDS = ['medical', 'cardiac_arrest', 'accident', 'fire', 'disaster', 'security', 'other'];
const api = new Api('trainer');
const $ = (id) => document.getElementById(id);
const state = { courses: [], certifications: [], draft: null, editing: null };

initI18n();
onLanguage(() => {
  renderCourses();
  renderEditor();
  renderKinds();
});
$('new-course').addEventListener('click', () => edit(null));
$('courses').addEventListener('click', onCoursesClick);
$('course-fields').addEventListener('input', onDraftInput);
$('course-fields').addEventListener('change', onDraftInput);
$('course-fields').addEventListener('click', onDraftClick);
$('course-form').addEventListener('submit', publish);
$('external-form').addEventListener('submit', recordExternal);
$('revoke-find').addEventListener('submit', findCertificates);
$('revoke-list').addEventListener('submit', revoke);
$('guidance-form').addEventListener('submit', saveGuidance);
$('g-load').addEventListener('click', loadGuidance);
renderKinds();

const { error } = openConsole(api, 'trainer', () => Promise.all([loadCourses(), loadCertifications(), loadGuidanceList()]));

async function loadCourses() {
  try {
    state.courses = await api.request('GET', '/v1/lms/courses');
  } catch (failure) {
    error(t('common.error.generic', { detail: failure.message }));
  }
  renderCourses();
}

async function loadCertifications() {
  try {
    state.certifications = await api.request('GET', '/v1/lms/certifications', { auth: false });
  } catch {
    state.certifications = [];
  }
  $('ext-cert').innerHTML = state.certifications.map((c) => `<option value="${esc(c.code)}">${esc(c.name)}</option>`).join('');
}

function renderCourses() {
  $('courses').innerHTML = state.courses.map((course) => `<tr data-course-row="${esc(course.id)}">
    <td><strong>${esc(course.title)}</strong><br><small>${esc(t('train.version', { n: course.version }))}${course.certification ? ` · ${esc(course.certification)}` : ''}</small></td>
    <td><button type="button" data-edit="${esc(course.id)}">${esc(t('trainer.edit'))}</button>
        <button type="button" data-learners="${esc(course.id)}">${esc(t('trainer.learners'))}</button></td></tr>`).join('');
}

async function onCoursesClick(event) {
  const button = event.target.closest('button');
  if (button?.dataset.edit) await edit(button.dataset.edit);
  if (button?.dataset.learners) await learners(button.dataset.learners);
}

/** Everyone enrolled in any version of the course, version by version. */
async function learners(id) {
  const box = $('learners');
  try {
    const versions = await api.request('GET', `/v1/lms/courses/${encodeURIComponent(id)}/versions`);
    const groups = await Promise.all(versions.filter((v) => v.enrolled > 0).map(async (version) => ({
      version,
      list: await api.request('GET', `/v1/lms/courses/${encodeURIComponent(version.id)}/enrollments`),
    })));
    box.hidden = false;
    box.innerHTML = `<h3>${esc(t('trainer.learners'))}</h3>` + (groups.length === 0 ? `<p class="muted">${esc(t('trainer.learners.none'))}</p>`
      : groups.map(({ version, list }) => `<h4>${esc(t('train.version', { n: version.version }))}</h4>
        <table class="learner-table" data-version="${version.version}"><tbody>${list.map((l) => `<tr data-learner="${esc(l.user_id)}"><td>${esc(l.name ?? l.user_id)}<br><small>${esc(l.user_id)}</small></td>
        <td>${esc(t('trainer.learners.lessons', { n: l.lessons_completed }))}</td>
        <td>${l.quizzes.map((q) => `${esc(q.title)}: ${q.best_score ?? '—'}% ${q.passed ? '✓' : ''} (${q.attempts})`).join('<br>')}</td>
        <td>${l.completed_at ? esc(clock(l.completed_at)) : ''}</td></tr>`).join('')}</tbody></table>`).join(''));
  } catch (failure) {
    error(t('common.error.generic', { detail: failure.message }));
  }
}

// ------------------------------------------------------------ the course editor

function blankQuestion() {
  return { kind: 'single', prompt: '', explanation: null, options: [{ text: '', correct: true }, { text: '', correct: false }] };
}

function blankModule() {
  return {
    title: '',
    lessons: [{ title: '', body_md: '', video_url: null }],
    quizzes: [{ title: '', pass_mark_pct: 80, draw_count: null, max_attempts: 3, questions: [blankQuestion()] }],
  };
}

async function edit(id) {
  state.editing = id;
  if (id) {
    try {
      state.draft = await api.request('GET', `/v1/lms/courses/${encodeURIComponent(id)}/definition`);
    } catch (failure) {
      error(t('common.error.generic', { detail: failure.message }));
      return;
    }
  } else {
    state.draft = { title: '', title_en: null, description: '', language: 'id', certification: null, modules: [blankModule()] };
  }
  $('editor').hidden = false;
  renderEditor();
  $('editor-title').scrollIntoView();
}

function field(path, label, value, { type = 'text', rows = 0, extra = '' } = {}) {
  const id = `f-${path.replace(/[^\w]/g, '-')}`;
  const input = rows
    ? `<textarea id="${id}" data-field="${esc(path)}" rows="${rows}" ${extra}>${esc(value ?? '')}</textarea>`
    : `<input id="${id}" type="${type}" data-field="${esc(path)}" value="${esc(value ?? '')}" ${extra}>`;
  return `<div><label for="${id}">${esc(label)}</label>${input}</div>`;
}

function renderEditor() {
  const draft = state.draft;
  if (!draft) return;
  $('publish').textContent = t(state.editing ? 'trainer.publish.version' : 'trainer.publish');
  const certs = `<div><label for="f-certification">${esc(t('trainer.course.certification'))}</label>
    <select id="f-certification" data-field="certification"><option value="">${esc(t('trainer.course.none'))}</option>
    ${state.certifications.map((c) => `<option value="${esc(c.code)}" ${draft.certification === c.code ? 'selected' : ''}>${esc(c.name)}</option>`).join('')}</select></div>`;
  const modules = draft.modules.map((module, m) => {
    const at = `modules[${m}]`;
    const lessons = module.lessons.map((lesson, l) => `<fieldset class="nested"><legend>${esc(t('trainer.lesson'))} ${l + 1}</legend>
      ${field(`${at}.lessons[${l}].title`, t('trainer.lesson.title'), lesson.title)}
      ${field(`${at}.lessons[${l}].body_md`, t('trainer.lesson.body'), lesson.body_md, { rows: 5 })}
      ${field(`${at}.lessons[${l}].video_url`, t('trainer.lesson.video'), lesson.video_url, { type: 'url' })}
      <button type="button" data-remove="${at}.lessons.${l}">${esc(t('trainer.remove'))}</button></fieldset>`).join('');
    const quizzes = module.quizzes.map((quiz, z) => {
      const qat = `${at}.quizzes[${z}]`;
      const questions = quiz.questions.map((question, n) => {
        const nat = `${qat}.questions[${n}]`;
        const options = question.options.map((option, o) => `<div class="row">
          ${field(`${nat}.options[${o}].text`, t('trainer.option', { n: o + 1 }), option.text)}
          <label class="check"><input type="checkbox" data-field="${nat}.options[${o}].correct" ${option.correct ? 'checked' : ''}> ${esc(t('trainer.option.correct'))}</label></div>`).join('');
        return `<fieldset class="nested" data-field="${nat}.options"><legend>${esc(t('trainer.question'))} ${n + 1}</legend>
          ${field(`${nat}.prompt`, t('trainer.question.prompt'), question.prompt)}
          <div><label for="k-${m}-${z}-${n}">${esc(t('trainer.question.kind'))}</label><select id="k-${m}-${z}-${n}" data-field="${nat}.kind">
            <option value="single" ${question.kind === 'single' ? 'selected' : ''}>${esc(t('trainer.question.single'))}</option>
            <option value="multiple" ${question.kind === 'multiple' ? 'selected' : ''}>${esc(t('trainer.question.multiple'))}</option></select></div>
          ${options}
          <button type="button" data-add-option="${nat}">+ ${esc(t('trainer.option', { n: question.options.length + 1 }))}</button>
          ${field(`${nat}.explanation`, t('trainer.question.explanation'), question.explanation)}
          <button type="button" data-remove="${qat}.questions.${n}">${esc(t('trainer.remove'))}</button></fieldset>`;
      }).join('');
      return `<fieldset class="nested"><legend>${esc(t('trainer.quiz'))} ${z + 1}</legend>
        <div class="grid2">${field(`${qat}.title`, t('trainer.quiz.title'), quiz.title)}
        ${field(`${qat}.pass_mark_pct`, t('trainer.quiz.pass'), quiz.pass_mark_pct, { type: 'number' })}
        ${field(`${qat}.draw_count`, t('trainer.quiz.draw'), quiz.draw_count, { type: 'number' })}
        ${field(`${qat}.max_attempts`, t('trainer.quiz.attempts'), quiz.max_attempts, { type: 'number' })}</div>
        <div data-field="${qat}.questions">${questions}</div>
        <button type="button" data-add-question="${qat}">${esc(t('trainer.question.add'))}</button>
        <button type="button" data-remove="${at}.quizzes.${z}">${esc(t('trainer.remove'))}</button></fieldset>`;
    }).join('');
    return `<fieldset data-module="${m}"><legend>${esc(t('trainer.module', { n: m + 1 }))}</legend>
      ${field(`${at}.title`, t('trainer.module.title'), module.title)}
      ${lessons}<button type="button" data-add-lesson="${m}">${esc(t('trainer.lesson.add'))}</button>
      ${quizzes}<button type="button" data-add-quiz="${m}">${esc(t('trainer.quiz.add'))}</button>
      <button type="button" data-remove="modules.${m}">${esc(t('trainer.remove'))}</button></fieldset>`;
  }).join('');
  $('course-fields').innerHTML = `<div class="grid2">${field('title', t('trainer.course.title'), draft.title)}
    ${field('title_en', t('trainer.course.title_en'), draft.title_en)}</div>
    ${field('description', t('trainer.course.description'), draft.description, { rows: 3 })}
    ${certs}<div data-field="modules">${modules}</div>
    <button type="button" data-add-module="1">${esc(t('trainer.module.add'))}</button>`;
}

/** `modules[0].quizzes[1].title` -> ['modules', 0, 'quizzes', 1, 'title']. */
function steps(path) {
  return path.replace(/\[(\d+)\]/g, '.$1').split('.').map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function at(path) {
  return steps(path).reduce((node, key) => node?.[key], state.draft);
}

function onDraftInput(event) {
  const input = event.target;
  const path = input.dataset.field;
  if (!path || !state.draft || input.tagName === 'FIELDSET' || input.tagName === 'DIV') return;
  const keys = steps(path);
  const last = keys.pop();
  const parent = keys.reduce((node, key) => node[key], state.draft);
  let value = input.type === 'checkbox' ? input.checked : input.value;
  if (input.type === 'number') value = input.value === '' ? null : Number(input.value);
  if (last === 'certification' || last === 'video_url' || last === 'explanation' || last === 'title_en') value = value === '' ? null : value;
  parent[last] = value;
}

function onDraftClick(event) {
  const button = event.target.closest('button');
  if (!button || !state.draft) return;
  const data = button.dataset;
  if (data.addModule) state.draft.modules.push(blankModule());
  else if (data.addLesson) state.draft.modules[Number(data.addLesson)].lessons.push({ title: '', body_md: '', video_url: null });
  else if (data.addQuiz) state.draft.modules[Number(data.addQuiz)].quizzes.push(blankModule().quizzes[0]);
  else if (data.addQuestion) at(data.addQuestion).questions.push(blankQuestion());
  else if (data.addOption) at(data.addOption).options.push({ text: '', correct: false });
  else if (data.remove) {
    const keys = data.remove.split('.');
    const index = Number(keys.pop());
    at(keys.join('.')).splice(index, 1);
  } else return;
  renderEditor();
}

async function publish(event) {
  event.preventDefault();
  const form = $('course-form');
  clearFieldErrors(form);
  const path = state.editing ? `/v1/lms/courses/${encodeURIComponent(state.editing)}/versions` : '/v1/lms/courses';
  try {
    const course = await api.request('POST', path, { body: state.draft });
    say($('course-message'), t('trainer.published', { n: course.version }));
    state.editing = course.id;
    $('publish').textContent = t('trainer.publish.version');
    await loadCourses();
  } catch (failure) {
    showProblem(form, failure, $('course-message'));
  }
}

// ------------------------------------------------------------ certificates

/** A date input (YYYY-MM-DD) as midnight in Asia/Jakarta, in UTC on the wire. */
function jakartaMidnight(value) {
  return value ? new Date(`${value}T00:00:00+07:00`).toISOString() : undefined;
}

async function recordExternal(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  // Exactly the contract's body; empty fields are left out, so the server names what is missing.
  const body = {
    user_id: String(data.get('user_id')).trim() || null,
    certification: data.get('certification'),
    issued_at: jakartaMidnight(data.get('issued_at')) ?? null,
  };
  if (data.get('expires_at')) body.expires_at = jakartaMidnight(data.get('expires_at'));
  if (String(data.get('evidence')).trim()) body.evidence = String(data.get('evidence')).trim();
  try {
    const certificate = await api.request('POST', '/v1/lms/certificates', { body });
    clearFieldErrors(form);
    say($('external-message'), t('trainer.external.done', { name: certificate.holder_name, code: certificate.code }));
    $('external-message').dataset.code = certificate.code;
  } catch (failure) {
    showProblem(form, failure, $('external-message'));
  }
}

async function findCertificates(event) {
  event.preventDefault();
  const user = $('revoke-user').value.trim();
  try {
    const list = await api.request('GET', `/v1/lms/users/${encodeURIComponent(user)}/certificates`);
    $('revoke-list').innerHTML = list.map((c) => `<li class="card"><strong>${esc(c.certification)}</strong> — ${esc(c.holder_name)}
      <span class="badge" data-cert-status="${esc(c.id)}">${esc(t(`cert.${c.status}`))}</span><br><small><code>${esc(c.code)}</code></small>
      ${c.status === 'revoked' ? '' : `<form class="row" data-revoke="${esc(c.id)}" novalidate>
        <label class="sr-only" for="reason-${esc(c.id)}">${esc(t('trainer.revoke.reason'))}</label>
        <input id="reason-${esc(c.id)}" name="reason" placeholder="${esc(t('trainer.revoke.reason'))}">
        <button type="submit" class="danger">${esc(t('trainer.revoke.button'))}</button></form>`}</li>`).join('');
    say($('revoke-message'), '');
  } catch (failure) {
    say($('revoke-message'), failure.status === 404 || failure.status === 422 ? t('admin.search.none') : t('common.error.generic', { detail: failure.message }), false);
  }
}

async function revoke(event) {
  event.preventDefault();
  const form = event.target;
  const id = form.dataset.revoke;
  try {
    await api.request('POST', `/v1/lms/certificates/${encodeURIComponent(id)}/revoke`, { body: { reason: form.reason.value } });
    say($('revoke-message'), t('trainer.revoke.done'));
    await findCertificates(new Event('submit'));
  } catch (failure) {
    showProblem(form, failure, $('revoke-message'));
  }
}

// ------------------------------------------------------------ guidance

function renderKinds() {
  const chosen = new Set([...$('g-kinds').querySelectorAll('input:checked')].map((input) => input.value));
  $('g-kinds').innerHTML = `<legend>${esc(t('trainer.guidance.kinds'))}</legend>` + KINDS.map((kind) =>
    `<label class="check"><input type="checkbox" name="kinds" value="${kind}" ${chosen.has(kind) ? 'checked' : ''}> ${esc(t(`kind.${kind}`))}</label>`).join('');
}

async function loadGuidanceList() {
  try {
    const list = await api.request('GET', '/v1/guidance?lang=id', { auth: false });
    $('g-slugs').innerHTML = list.map((page) => `<option value="${esc(page.slug)}">${esc(page.title)}</option>`).join('');
  } catch {
    // The list only helps typing; the form works without it.
  }
}

async function loadGuidance() {
  const slug = $('g-slug').value.trim();
  try {
    const page = await api.request('GET', `/v1/guidance/${encodeURIComponent(slug)}?lang=${$('g-lang').value}`, { auth: false });
    $('g-title').value = page.title;
    $('g-body').value = page.body_markdown;
    for (const input of $('g-kinds').querySelectorAll('input')) input.checked = page.kinds.includes(input.value);
  } catch (failure) {
    say($('guidance-message'), t('common.error.generic', { detail: failure.message }), false);
  }
}

async function saveGuidance(event) {
  event.preventDefault();
  const form = event.target;
  const slug = $('g-slug').value.trim() || '-';
  const body = {
    lang: $('g-lang').value,
    title: $('g-title').value,
    body_markdown: $('g-body').value,
    kinds: [...$('g-kinds').querySelectorAll('input:checked')].map((input) => input.value),
  };
  try {
    const page = await api.request('PUT', `/v1/guidance/${encodeURIComponent(slug)}`, { body });
    clearFieldErrors(form);
    say($('guidance-message'), t('trainer.guidance.saved', { n: page.version }));
    loadGuidanceList();
  } catch (failure) {
    showProblem(form, failure, $('guidance-message'));
  }
}
