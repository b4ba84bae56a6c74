// Training in the volunteer app: the course catalogue and "my courses", enrolling, lessons (text
// and pictures as sanitised HTML from the server, an embedded video, attachments), quizzes with
// feedback per question as soon as they are submitted, certificates with their QR code and
// expiry, and reminders before a certificate expires (stored ones from the LMS, live ones over
// /v1/ws, pushes through the service worker).
//
// Progress survives going offline: every course opened and the progress in it are kept in
// localStorage; a lesson marked done or a quiz answered without a network is queued and sent,
// in order, as soon as the browser is online again (and at every start).
import { ApiError, esc } from '/web/shared/api.js';
import { clock, day, t } from '/web/shared/i18n.js';
import { say } from '/web/shared/forms.js';

const STORE = 'kreki.volunteer.training';
const QUEUE = 'kreki.volunteer.training-queue';
/** A certificate this close to its end is flagged, in days (the LMS reminds at 30, 7 and 1). */
const SOON_DAYS = 30;

let api = null;
const $ = (id) => document.getElementById(id);
const view = { name: 'list', course: null, quiz: null };

function load(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key) || 'null') ?? fallback;
  } catch {
    return fallback;
  }
}

function kept() {
  return load(STORE, { courses: {}, progress: {}, catalogue: [], enrollments: [], certificates: [], certifications: [], notifications: [] });
}

function keep(change) {
  const value = kept();
  change(value);
  localStorage.setItem(STORE, JSON.stringify(value));
}

function queue() {
  return load(QUEUE, []);
}

function setQueue(items) {
  localStorage.setItem(QUEUE, JSON.stringify(items));
}

function message(text, ok = true) {
  say($('training-message'), text, ok);
}

/** Wires the training views to `theApi` (the volunteer's session). */
export function initTraining(theApi) {
  api = theApi;
  window.addEventListener('online', () => flush().then(() => render()));
  $('training').addEventListener('click', onClick);
  $('training').addEventListener('submit', onSubmit);
}

/** Called when a tab opens (`training`, `certs`) and once at start (`null`). */
export async function showTab(name) {
  await flush();
  if (name === 'training') await refreshCatalogue();
  if (name === 'certs') await refreshCertificates();
  if (name === null) await refreshReminders();
  render();
}

/** Live messages: a certificate about to expire. */
export function onTrainingMessage(message) {
  if (message.type === 'certificate.expiring') {
    keep((value) => {
      value.notifications = [{ kind: `expiry_${message.days_before}d`, message, created_at: new Date().toISOString() }, ...value.notifications];
    });
    renderReminder();
  }
}

async function get(path, store) {
  try {
    const answer = await api.request('GET', path);
    if (store) keep((value) => store(value, answer));
    return answer;
  } catch (failure) {
    if (failure.status !== 0) message(t('common.error.generic', { detail: failure.message }), false);
    return null;
  }
}

async function refreshCatalogue() {
  await Promise.all([
    get('/v1/lms/courses', (value, list) => { value.catalogue = list; }),
    get('/v1/lms/enrollments/me', (value, list) => { value.enrollments = list; }),
    get('/v1/lms/certifications', (value, list) => { value.certifications = list; }),
  ]);
}

async function refreshCertificates() {
  await Promise.all([
    get('/v1/lms/certificates/me', (value, list) => { value.certificates = list; }),
    get('/v1/lms/certifications', (value, list) => { value.certifications = list; }),
    refreshReminders(),
  ]);
}

async function refreshReminders() {
  await Promise.all([
    get('/v1/lms/notifications/me', (value, list) => { value.notifications = list; }),
    get('/v1/lms/certifications', (value, list) => { value.certifications = list; }),
    get('/v1/lms/certificates/me', (value, list) => { value.certificates = list; }),
  ]);
  renderReminder();
}

function certificationName(code) {
  return kept().certifications.find((c) => c.code === code)?.name ?? code;
}

function daysLeft(iso) {
  return Math.ceil((Date.parse(iso) - Date.now()) / 86400000);
}

/** The banner: the soonest valid certificate ending within 30 days, or a stored reminder's. */
function renderReminder() {
  const value = kept();
  const soon = value.certificates
    .filter((c) => c.status === 'valid' && daysLeft(c.expires_at) <= SOON_DAYS)
    .sort((a, b) => a.expires_at.localeCompare(b.expires_at))[0];
  const note = value.notifications.find((n) => n.message?.type === 'certificate.expiring');
  const ending = soon ?? (note ? { certification: note.message.certification, expires_at: note.message.expires_at } : null);
  const banner = $('reminder');
  banner.hidden = !ending;
  if (!ending) return;
  banner.dataset.certification = ending.certification;
  banner.textContent = `${certificationName(ending.certification)} — ${t('cert.soon', { days: t('common.days', { n: Math.max(0, daysLeft(ending.expires_at)) }) })}`;
}

// ------------------------------------------------------------ offline queue

/** Sends what was done offline, oldest first; stops at the first network failure. */
async function flush() {
  let items = queue();
  while (items.length) {
    const item = items[0];
    try {
      if (item.type === 'lesson') {
        const progress = await api.request('POST', `/v1/lms/lessons/${encodeURIComponent(item.lesson)}/complete`);
        keep((value) => { value.progress[progress.course_id] = progress; });
      } else if (item.type === 'attempt') {
        const result = await api.request('POST', `/v1/lms/quizzes/${encodeURIComponent(item.quiz)}/attempts`, { body: { attempt_id: item.attempt_id, answers: item.answers } });
        keep((value) => { value.results = { ...(value.results ?? {}), [item.quiz]: result }; });
      }
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 0) return;
      // Refused for good (an expired attempt, say): dropped, and said.
      message(t('common.error.generic', { detail: failure.message }), false);
    }
    items = queue().slice(1);
    setQueue(items);
  }
}

// ------------------------------------------------------------ views

function render() {
  if (view.name === 'course') renderCourse();
  else if (view.name === 'quiz') renderQuiz();
  else if (view.name === 'result') renderResult();
  else renderList();
  renderCertificates();
  renderReminder();
}

function renderList() {
  const value = kept();
  const enrolled = new Set(value.enrollments.map((e) => e.course_id));
  const series = new Set(value.enrollments.map((e) => e.series_id));
  const mine = value.enrollments.map((e) => `<li class="card course" data-course-card="${esc(e.course_id)}">
      <h3>${esc(e.title)}</h3>
      <p class="muted">${esc(t('train.version', { n: e.version }))}${e.certification ? ` · ${esc(t('train.certifies', { name: certificationName(e.certification) }))}` : ''}</p>
      <p>${esc(t('train.progress', { done: e.lessons_completed, total: e.lessons_total }))}</p>
      ${e.newest_version > e.version ? `<p class="message">${esc(t('train.newer', { n: e.newest_version }))}</p>` : ''}
      <button type="button" class="primary big" data-open="${esc(e.course_id)}">${esc(t('train.open'))}</button></li>`).join('');
  const others = value.catalogue.filter((c) => !enrolled.has(c.id) && !series.has(c.series_id)).map((c) => `<li class="card course" data-course-card="${esc(c.id)}">
      <h3>${esc(c.title)}</h3>
      <p class="muted">${esc(t('train.version', { n: c.version }))}${c.certification ? ` · ${esc(t('train.certifies', { name: certificationName(c.certification) }))}` : ''}</p>
      ${c.description ? `<p>${esc(c.description)}</p>` : ''}
      <button type="button" class="primary big" data-enroll="${esc(c.id)}">${esc(t('train.enroll'))}</button></li>`).join('');
  $('training').innerHTML = `<h2>${esc(t('train.mine'))}</h2><ul class="alerts">${mine || `<li class="muted">${esc(t('train.none'))}</li>`}</ul>
    <h2>${esc(t('train.catalogue'))}</h2><ul class="alerts">${others || `<li class="muted">${esc(t('train.none'))}</li>`}</ul>`;
}

function lessonsDone(courseId) {
  const done = new Set(kept().progress[courseId]?.lessons_completed ?? []);
  const waiting = new Set(queue().filter((item) => item.type === 'lesson').map((item) => item.lesson));
  return { done, waiting };
}

/** An embedded player for YouTube links and video files; other links stay links. */
function video(url) {
  if (!url) return '';
  const youtube = url.match(/^https:\/\/(?:www\.)?(?:youtube\.com\/watch\?v=|youtu\.be\/)([\w-]{6,20})/);
  if (youtube) {
    return `<iframe class="video" title="${esc(t('train.video'))}" src="https://www.youtube-nocookie.com/embed/${esc(youtube[1])}"
      allow="encrypted-media; picture-in-picture" allowfullscreen loading="lazy"></iframe>`;
  }
  if (/^https:\/\/\S+\.(mp4|webm)$/i.test(url)) {
    return `<video class="video" controls preload="none" src="${esc(url)}"></video>`;
  }
  return `<p><a class="button" href="${esc(url)}" target="_blank" rel="noopener noreferrer">${esc(t('train.video'))}</a></p>`;
}

function renderCourse() {
  const course = kept().courses[view.course];
  if (!course) {
    view.name = 'list';
    renderList();
    return;
  }
  const { done, waiting } = lessonsDone(course.id);
  const results = kept().results ?? {};
  const modules = course.modules.map((module) => `<section class="card module"><h3>${esc(module.title)}</h3>
    ${module.lessons.map((lesson) => {
    const state = done.has(lesson.id) ? 'done' : waiting.has(lesson.id) ? 'queued' : 'open';
    return `<article class="lesson" data-lesson="${esc(lesson.id)}" data-state="${state}">
        <h4>${esc(lesson.title)}</h4>
        <div class="lesson-body">${lesson.body_html ?? ''}</div>
        ${video(lesson.video_url)}
        ${lesson.attachments?.length ? `<p><strong>${esc(t('train.attachments'))}:</strong> ${lesson.attachments.map((a) => `<a href="${esc(a.url)}" target="_blank" rel="noopener noreferrer">${esc(a.title)}</a>`).join(', ')}</p>` : ''}
        ${state === 'done' ? `<p class="badge">${esc(t('train.lesson.completed'))}</p>`
          : state === 'queued' ? `<p class="badge">${esc(t('train.lesson.queued'))}</p>`
            : `<button type="button" class="big" data-complete="${esc(lesson.id)}">${esc(t('train.lesson.done'))}</button>`}
      </article>`;
  }).join('')}
    ${module.quizzes.map((quiz) => `<div class="quiz card" data-quiz-card="${esc(quiz.id)}"><h4>${esc(quiz.title)}</h4>
      <p class="muted">${esc(t('train.quiz.passmark', { n: quiz.pass_mark_pct }))}${quiz.draw_count ? ` · ${esc(t('train.quiz.draw', { n: quiz.draw_count }))}` : ''}</p>
      ${results[quiz.id] ? `<p class="badge">${esc(t('train.quiz.score', { score: results[quiz.id].score, verdict: t(results[quiz.id].passed ? 'train.quiz.passed' : 'train.quiz.failed') }))}</p>` : ''}
      <button type="button" class="primary big" data-start="${esc(quiz.id)}">${esc(t('train.quiz.start'))}</button></div>`).join('')}
    </section>`).join('');
  const enrollment = kept().enrollments.find((e) => e.course_id === course.id);
  $('training').innerHTML = `<button type="button" class="big" data-back="list">${esc(t('guide.back'))}</button>
    <h2 id="course-title">${esc(course.title)}</h2>
    <p class="muted">${esc(t('train.version', { n: course.version }))}</p>
    ${enrollment && enrollment.newest_version > course.version ? `<p class="message">${esc(t('train.newer', { n: enrollment.newest_version }))}</p>` : ''}
    ${modules}`;
}

function renderQuiz() {
  const attempt = load(`kreki.volunteer.attempt.${view.quiz}`, null);
  if (!attempt) {
    view.name = 'course';
    renderCourse();
    return;
  }
  const questions = attempt.questions.map((q, n) => `<fieldset class="question" data-question="${esc(q.id)}">
      <legend>${n + 1}. ${esc(q.prompt)}</legend>
      ${q.options.map((o) => `<label><input type="${q.kind === 'multiple' ? 'checkbox' : 'radio'}" name="q-${esc(q.id)}" value="${esc(o.id)}"> ${esc(o.text)}</label>`).join('')}
    </fieldset>`).join('');
  $('training').innerHTML = `<button type="button" class="big" data-back="course">${esc(t('train.back'))}</button>
    <form id="quiz-form" data-quiz="${esc(view.quiz)}">${questions}
    <button type="submit" class="primary big">${esc(t('train.quiz.submit'))}</button></form>`;
}

function renderResult() {
  const result = (kept().results ?? {})[view.quiz];
  const attempt = load(`kreki.volunteer.attempt.${view.quiz}`, null);
  if (!result) {
    view.name = 'course';
    renderCourse();
    return;
  }
  const prompts = new Map((attempt?.questions ?? []).map((q) => [q.id, q.prompt]));
  const rows = result.questions.map((q) => {
    const verdict = q.correct ? 'train.quiz.right' : q.earned > 0 ? 'train.quiz.partly' : 'train.quiz.wrong';
    return `<li class="${q.correct ? 'feedback-right' : 'feedback-wrong'}" data-feedback="${q.correct ? 'right' : 'wrong'}">
      <strong>${esc(t(verdict))}</strong> — ${esc(prompts.get(q.question_id) ?? '')} (${q.earned}/${q.points})
      ${q.explanation ? `<br><span>${esc(q.explanation)}</span>` : ''}</li>`;
  }).join('');
  $('training').innerHTML = `<button type="button" class="big" data-back="course">${esc(t('train.back'))}</button>
    <h2 id="quiz-score" data-passed="${result.passed}">${esc(t('train.quiz.score', { score: result.score, verdict: t(result.passed ? 'train.quiz.passed' : 'train.quiz.failed') }))}</h2>
    ${result.certificate ? `<p class="message ok" id="quiz-certificate">${esc(t('train.quiz.certificate', { name: certificationName(result.certificate.certification) }))}</p>` : ''}
    <ul class="alerts feedback">${rows}</ul>
    ${result.passed ? '' : `<button type="button" class="primary big" data-start="${esc(view.quiz)}">${esc(t('train.quiz.again'))}</button>`}`;
}

function renderCertificates() {
  const list = $('certificates');
  const value = kept();
  $('account-id').textContent = api?.user?.id ? t('cert.account', { id: api.user.id }) : '';
  list.innerHTML = value.certificates.length === 0 ? `<li class="muted">${esc(t('cert.none'))}</li>`
    : value.certificates.map((c) => {
      const left = daysLeft(c.expires_at);
      const verify = `/v1/lms/certificates/verify/${encodeURIComponent(c.code)}`;
      return `<li class="card cert" data-certificate="${esc(c.id)}" data-status="${esc(c.status)}">
        <div><h3>${esc(certificationName(c.certification))}</h3>
          <p><span class="badge">${esc(t(`cert.${c.status}`))}</span></p>
          <p>${esc(t('cert.until', { date: day(c.expires_at) }))}${c.status === 'valid' ? ` (${esc(t('common.days', { n: left }))})` : ''}</p>
          ${c.status === 'valid' && left <= SOON_DAYS ? `<p class="message error">${esc(t('cert.soon', { days: t('common.days', { n: left }) }))}</p>` : ''}
          ${c.revoked_reason ? `<p>${esc(t('cert.reason', { reason: c.revoked_reason }))}</p>` : ''}
          <p>${esc(t('cert.code'))}: <code>${esc(c.code)}</code></p>
          <p><a href="${esc(verify)}" target="_blank" rel="noopener">${esc(t('cert.verify'))}</a></p></div>
        <img src="${esc(verify)}/qr.svg" alt="${esc(t('cert.qr'))}" width="128" height="128"></li>`;
    }).join('');
}

// ------------------------------------------------------------ actions

async function onClick(event) {
  const button = event.target.closest('button');
  if (!button) return;
  if (button.dataset.enroll) await enroll(button.dataset.enroll, button);
  else if (button.dataset.open) await openCourse(button.dataset.open);
  else if (button.dataset.complete) await complete(button.dataset.complete, button);
  else if (button.dataset.start) await startQuiz(button.dataset.start, button);
  else if (button.dataset.back) {
    view.name = button.dataset.back;
    if (view.name === 'list') await refreshCatalogue();
    render();
  }
}

async function enroll(id, button) {
  button.disabled = true;
  try {
    await api.request('POST', `/v1/lms/courses/${encodeURIComponent(id)}/enroll`);
    await refreshCatalogue();
    await openCourse(id);
  } catch (failure) {
    message(failure.status === 0 ? t('common.error.network') : t('common.error.generic', { detail: failure.message }), false);
    button.disabled = false;
  }
}

async function openCourse(id) {
  const [course, progress] = await Promise.all([
    get(`/v1/lms/courses/${encodeURIComponent(id)}`, (value, answer) => { value.courses[id] = answer; }),
    get(`/v1/lms/courses/${encodeURIComponent(id)}/progress`, (value, answer) => { value.progress[id] = answer; }),
  ]);
  if (!course && !kept().courses[id]) {
    message(t('common.error.network'), false);
    return;
  }
  if (!progress && !navigator.onLine) message(t('common.offline'));
  view.name = 'course';
  view.course = id;
  render();
}

async function complete(lesson, button) {
  button.disabled = true;
  setQueue([...queue(), { type: 'lesson', lesson, course: view.course }]);
  await flush();
  if (queue().some((item) => item.lesson === lesson)) message(t('common.offline'));
  renderCourse();
}

async function startQuiz(quiz, button) {
  button.disabled = true;
  try {
    const attempt = await api.request('POST', `/v1/lms/quizzes/${encodeURIComponent(quiz)}/attempts/start`);
    localStorage.setItem(`kreki.volunteer.attempt.${quiz}`, JSON.stringify(attempt));
    view.name = 'quiz';
    view.quiz = quiz;
    message('');
    render();
  } catch (failure) {
    button.disabled = false;
    const until = failure.problem?.retry_after_s
      ? new Date(Date.now() + failure.problem.retry_after_s * 1000).toISOString() : null;
    message(failure.status === 429 && until ? t('train.quiz.locked', { time: clock(until) })
      : failure.status === 0 ? t('common.error.network') : t('common.error.generic', { detail: failure.message }), false);
  }
}

async function onSubmit(event) {
  if (event.target.id !== 'quiz-form') return;
  event.preventDefault();
  const quiz = event.target.dataset.quiz;
  const attempt = load(`kreki.volunteer.attempt.${quiz}`, null);
  if (!attempt) return;
  const answers = attempt.questions.map((q) => ({
    question_id: q.id,
    selected: [...event.target.querySelectorAll(`input[name="q-${CSS.escape(q.id)}"]:checked`)].map((input) => input.value),
  }));
  setQueue([...queue(), { type: 'attempt', quiz, attempt_id: attempt.attempt_id, answers }]);
  await flush();
  if (queue().some((item) => item.type === 'attempt' && item.quiz === quiz)) {
    message(t('train.quiz.offline'));
    return;
  }
  const result = (kept().results ?? {})[quiz];
  if (result?.certificate) await refreshCertificates();
  await refreshCatalogue();
  view.name = 'result';
  render();
}
