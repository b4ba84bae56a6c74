// A timeline entry in words, in the page's language: the dispatch's own entries and the operations
// centre's (triage, release, notes, phoned in, re-dispatch, hand-off, acknowledged escalations).
import { clock, distance, t } from '/web/shared/i18n.js';

/** A timeline event in words; unknown types show as they are. */
export function describe(event) {
  const data = event.data ?? {};
  const key = `tl.${event.type}`;
  const text = t(key, {
    wave: data.wave ?? '?',
    n: Array.isArray(data.volunteers) ? data.volunteers.length : (data.volunteers ?? data.count ?? '?'),
    radius: distance(data.radius_m),
    distance: distance(data.distance_m),
    name: data.volunteer?.name ?? '',
    status: data.to && event.type === 'assignment_status' ? t(`astatus.${data.to}`) : data.status ? t(`astatus.${data.status}`) : '',
    text: data.text ?? '',
    to: data.to ? t(`ops.handoff.to.${data.to}`) : '',
    reference: data.reference ?? '',
    time: clock(data.auto_release_at),
    phone: data.caller_phone ? ` (${data.caller_phone})` : '',
    reason: data.reason ? t(`ops.esc.reason.${data.reason}`) : '',
  });
  if (event.type === 'released' && !data.by) return t('tl.released.auto');
  const reason = data.reason && event.type !== 'escalation_acknowledged' ? ` (${data.reason})` : '';
  const outcome = data.outcome ? `: ${t(`outcome.${data.outcome}`)}${data.note ? ` (${data.note})` : ''}` : '';
  return (text === key ? String(event.type).replaceAll(/[._]/g, ' ') : text) + outcome + reason;
}
