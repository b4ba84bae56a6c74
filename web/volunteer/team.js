// The team around one assignment: what this responder does on scene (the `role` the kind gives
// accepts in order: CPR, fetch the AED, lead), the AED an `aed` responder fetches on the way (its
// place described, on the map, and the route from here via the AED to the scene), and the other
// responders of the alert: names and roles from the alert, live positions from the WebSocket's
// `responder.position` frames, which the server sends only while both are assigned. When the
// assignment ends the others are taken off the map and later frames are ignored.
/* global L */
import { esc } from '/web/shared/api.js';
import { distance, t } from '/web/shared/i18n.js';
import { alertIcon, createMap } from '/web/shared/map.js';

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(['accepted', 'en_route', 'on_scene']);
const team = {
  /** The assignment shown: `{assignment, alert}`, or null. */
  kept: null,
  /** Co-responders by volunteer id: `{id, name, role, lat?, lng?}`. */
  others: new Map(),
  map: null,
  making: null,
  layers: null,
  /** Where this phone is, `{lat, lng}`, for the route. */
  here: null,
};

/** A role's instruction, or '' for none. */
export function roleText(role) {
  return role ? t(`responder.role.${role}`) : '';
}

/** Shows (or hides, with null) the team of the assignment `kept` = `{assignment, alert}`. */
export function showTeam(kept, here) {
  const same = team.kept && kept && team.kept.assignment.id === kept.assignment.id;
  if (!kept || !ACTIVE.has(kept.assignment.status)) {
    team.kept = null;
    team.others.clear();
    team.layers?.others.clearLayers();
    renderText();
    return;
  }
  if (!same) {
    team.others.clear();
    team.fitted = false;
  }
  team.kept = kept;
  team.here = here ?? team.here;
  for (const other of kept.alert.assignments ?? []) remember(other);
  renderText();
  draw();
}

/** Learns the co-responders of an assignment (never oneself, never one who left). */
function remember(assignment) {
  const me = team.kept?.assignment.volunteer?.id;
  const who = assignment.volunteer;
  if (!who?.id || who.id === me || assignment.id === team.kept?.assignment.id) return;
  if (!ACTIVE.has(assignment.status)) {
    team.others.delete(who.id);
    return;
  }
  const known = team.others.get(who.id) ?? {};
  team.others.set(who.id, { ...known, id: who.id, name: who.name, role: assignment.role ?? known.role ?? null });
}

/**
 * Handles a live message; answers true when it was the team's. `responder.position` moves a
 * co-responder; `alert.updated` and `assignment.updated` for the alert shown refresh who is on it.
 */
export function onTeamMessage(message) {
  const kept = team.kept;
  if (!kept) return false;
  if (message.type === 'responder.position') {
    if (message.alert_id !== kept.alert.id || message.volunteer?.id === kept.assignment.volunteer?.id) return true;
    const known = team.others.get(message.volunteer.id) ?? {};
    team.others.set(message.volunteer.id, { ...known, id: message.volunteer.id, name: message.volunteer.name, role: message.role ?? known.role ?? null, lat: message.lat, lng: message.lng });
    renderText();
    draw();
    return true;
  }
  if (message.type === 'alert.updated' && (message.alert?.id === kept.alert.id)) {
    for (const other of message.alert.assignments ?? []) remember(other);
    renderText();
    draw();
  }
  if (message.type === 'assignment.updated' && message.assignment?.alert_id === kept.alert.id) {
    remember(message.assignment);
    renderText();
    draw();
  }
  return false;
}

/** This phone moved: the route starts here. */
export function moveTeam(here) {
  team.here = here;
  if (team.kept) draw();
}

function renderText() {
  const kept = team.kept;
  const role = $('assignment-role');
  const aed = $('assignment-aed');
  const list = $('team');
  if (!kept) {
    role.hidden = true;
    aed.hidden = true;
    $('navigate-aed-line').hidden = true;
    list.innerHTML = '';
    $('assignment-map').hidden = true;
    return;
  }
  const { assignment } = kept;
  role.hidden = !assignment.role;
  role.dataset.role = assignment.role ?? '';
  role.textContent = roleText(assignment.role);
  aed.hidden = !assignment.aed;
  // The AED first: the phone's maps app takes one destination, so the device is its own link.
  $('navigate-aed-line').hidden = !assignment.aed;
  if (assignment.aed) $('navigate-aed').href = `geo:${assignment.aed.lat},${assignment.aed.lng}?q=${assignment.aed.lat},${assignment.aed.lng}`;
  if (assignment.aed) {
    const via = assignment.aed.distance_via_m;
    aed.innerHTML = `<strong>${esc(t('responder.aed.where'))}</strong> ${esc(assignment.aed.description ?? '')}`
      + (typeof via === 'number' ? `<br><small>${esc(t('responder.aed.via', { distance: distance(via) }))}</small>` : '');
  }
  const others = [...team.others.values()];
  list.innerHTML = others.length === 0 ? '' : `<h3>${esc(t('responder.team'))}</h3>` + others.map((o) => `<li data-teammate="${esc(o.id)}">
    <span class="pin pin-responder" aria-hidden="true">${esc(initials(o.name))}</span>
    <strong>${esc(o.name ?? '')}</strong> — ${esc(o.role ? t(`responder.rolename.${o.role}`) : t('responder.rolename.none'))}
    ${typeof o.lat === 'number' ? `<small>${esc(team.here ? t('vol.offer.distance', { distance: distance(metres(team.here, o)) }) : '')}</small>` : `<small class="muted">${esc(t('responder.noposition'))}</small>`}</li>`).join('');
}

function initials(name) {
  return String(name ?? '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
}

function metres(a, b) {
  const rad = Math.PI / 180;
  const x = (b.lng - a.lng) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
  const y = (b.lat - a.lat) * rad;
  return Math.sqrt(x * x + y * y) * 6371008.8;
}

/** Draws the scene, the AED with the route via it, this phone and the others. */
async function draw() {
  const kept = team.kept;
  const element = $('assignment-map');
  element.hidden = false;
  if (!team.map) {
    if (typeof L === 'undefined') return;
    team.making ??= createMap(element, { center: kept.alert.location, zoom: 16, label: t('responder.map') }).then((map) => {
      team.map = map;
      team.layers = { fixed: L.layerGroup().addTo(map), others: L.layerGroup().addTo(map) };
    });
    await team.making;
    if (!team.kept) return;
  }
  const { alert, assignment } = team.kept;
  const scene = [alert.location.lat, alert.location.lng];
  team.layers.fixed.clearLayers();
  team.layers.others.clearLayers();
  L.marker(scene, { icon: alertIcon({ ...alert, status: 'assigned' }), title: t(`kind.${alert.kind}`) }).addTo(team.layers.fixed);
  const points = [scene];
  if (team.here) {
    const here = [team.here.lat, team.here.lng];
    points.push(here);
    L.marker(here, { icon: L.divIcon({ className: '', html: `<span class="pin pin-me">${esc(t('responder.me'))}</span>`, iconSize: null, iconAnchor: [18, 14] }), title: t('responder.me') }).addTo(team.layers.fixed);
  }
  if (assignment.aed) {
    const device = [assignment.aed.lat, assignment.aed.lng];
    points.push(device);
    L.marker(device, { icon: L.divIcon({ className: '', html: '<span class="pin pin-aed">AED</span>', iconSize: null, iconAnchor: [20, 14] }), title: assignment.aed.description ?? 'AED' }).addTo(team.layers.fixed);
    const route = team.here ? [[team.here.lat, team.here.lng], device, scene] : [device, scene];
    L.polyline(route, { color: '#0b6b2e', weight: 5, dashArray: '10 6', className: 'route-via-aed' }).addTo(team.layers.fixed);
  } else if (team.here) {
    L.polyline([[team.here.lat, team.here.lng], scene], { color: '#1d4ed8', weight: 4, dashArray: '6 6' }).addTo(team.layers.fixed);
  }
  for (const other of team.others.values()) {
    if (typeof other.lat !== 'number') continue;
    points.push([other.lat, other.lng]);
    const label = `${initials(other.name)}${other.role ? ` · ${t(`responder.rolename.${other.role}`)}` : ''}`;
    L.marker([other.lat, other.lng], {
      icon: L.divIcon({ className: '', html: `<span class="pin pin-responder" data-responder="${esc(other.id)}">${esc(label)}</span>`, iconSize: null, iconAnchor: [18, 14] }),
      title: other.name ?? '',
    }).addTo(team.layers.others);
  }
  if (points.length > 1 && !team.fitted) {
    team.map.fitBounds(points, { padding: [30, 30], maxZoom: 17 });
    team.fitted = true;
  }
}
