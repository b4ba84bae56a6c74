// Text in Bahasa Indonesia (the default) and English. Elements name their text with
// data-i18n="key" (textContent), data-i18n-aria="key" (aria-label), data-i18n-title="key" and
// data-i18n-placeholder="key"; `t(key, vars)` gives a string for scripts. The choice is kept in
// localStorage and applied to <html lang> so screen readers pronounce it right.

const TEXT = {
  id: {
    'lang.switch': 'Bahasa',
    'common.login': 'Nomor HP atau email',
    'common.phone': 'Nomor HP',
    'common.password': 'Kata sandi',
    'common.name': 'Nama lengkap',
    'common.signin': 'Masuk',
    'common.register': 'Daftar',
    'common.signout': 'Keluar',
    'common.cancel': 'Batalkan',
    'common.close': 'Tutup',
    'common.loading': 'Memuat…',
    'common.error.network': 'Tidak ada koneksi ke server. Mencoba lagi…',
    'common.error.signin': 'Nomor/email atau kata sandi salah.',
    'common.error.generic': 'Terjadi kesalahan: {detail}',
    'common.error.unavailable': 'Layanan ini belum tersedia di server ({status}).',
    'common.error.role': 'Akun ini bukan {role}.',
    'role.coordinator': 'koordinator',
    'role.volunteer': 'relawan',
    'common.live.on': 'Langsung',
    'common.live.off': 'Terputus, menyambung lagi…',
    'common.km': '{n} km',
    'common.m': '{n} m',
    'common.ago': '{n} menit lalu',
    'kind.medical': 'Medis',
    'kind.cardiac_arrest': 'Henti jantung',
    'kind.accident': 'Kecelakaan',
    'kind.fire': 'Kebakaran',
    'kind.disaster': 'Bencana',
    'kind.security': 'Keamanan',
    'kind.other': 'Lainnya',
    'status.dispatching': 'Mencari relawan',
    'status.assigned': 'Relawan ditugaskan',
    'status.on_scene': 'Relawan di lokasi',
    'status.resolved': 'Selesai',
    'status.cancelled': 'Dibatalkan',
    'status.unmatched': 'Tidak ada relawan',
    'astatus.accepted': 'Menerima',
    'astatus.en_route': 'Dalam perjalanan',
    'astatus.on_scene': 'Di lokasi',
    'astatus.completed': 'Selesai',
    'astatus.withdrawn': 'Mundur',
    'dash.title': 'KREKI — Dasbor Koordinator',
    'dash.signin.title': 'Masuk sebagai koordinator',
    'dash.map': 'Peta langsung kejadian dan relawan',
    'dash.fig.open': 'Kejadian terbuka',
    'dash.fig.unmatched': 'Tanpa relawan',
    'dash.fig.median': 'Median waktu diterima (hari ini)',
    'dash.fig.volunteers': 'Relawan bertugas',
    'dash.filter.status': 'Status',
    'dash.filter.kind': 'Jenis',
    'dash.filter.all': 'Semua',
    'dash.filter.open': 'Terbuka',
    'dash.list': 'Daftar kejadian',
    'dash.list.empty': 'Tidak ada kejadian yang cocok.',
    'dash.detail': 'Rincian kejadian',
    'dash.detail.citizen': 'Pelapor',
    'dash.detail.created': 'Dibuat',
    'dash.detail.note': 'Catatan',
    'dash.detail.responders': 'Relawan',
    'dash.detail.none': 'Belum ada.',
    'dash.timeline': 'Linimasa',
    'dash.assign': 'Tugaskan manual',
    'dash.assign.hint': 'Relawan bertugas terdekat lebih dulu.',
    'dash.assign.button': 'Tugaskan {name}',
    'dash.assign.none': 'Tidak ada relawan bebas di sekitar.',
    'dash.assign.done': '{name} ditugaskan.',
    'dash.cancel.reason': 'Alasan pembatalan',
    'dash.cancel.done': 'Kejadian dibatalkan.',
    'dash.legend': 'Keterangan',
    'dash.legend.alert': 'Kejadian (huruf = jenis)',
    'dash.legend.free': 'Relawan bebas',
    'dash.legend.busy': 'Relawan sibuk',
    'dash.legend.line': 'Garis: relawan menuju kejadian',
    'dash.volunteer.free': 'bebas',
    'dash.volunteer.busy': 'sibuk',
    'app.title': 'KREKI — Tombol Darurat',
    'app.signin.title': 'Masuk atau daftar',
    'app.kind': 'Jenis keadaan darurat',
    'app.panic': 'TOLONG',
    'app.panic.aria': 'Kirim panggilan darurat sekarang',
    'app.panic.hint': 'Tekan sekali. Lokasi Anda dikirim ke relawan terdekat.',
    'app.location.asking': 'Meminta izin lokasi…',
    'app.location.ok': 'Lokasi siap (±{n} m).',
    'app.location.denied': 'Izin lokasi ditolak. Aktifkan lokasi agar relawan dapat menemukan Anda.',
    'app.location.unavailable': 'Lokasi belum tersedia.',
    'app.sending': 'Mengirim panggilan darurat…',
    'app.sending.retry': 'Belum terkirim. Mencoba lagi (percobaan {n})…',
    'app.sending.keep': 'Jangan tutup aplikasi. Panggilan yang sama akan terus dikirim.',
    'app.status.title': 'Bantuan sedang diatur',
    'app.status.coming': '{name} menuju Anda ({distance})',
    'app.status.searching': 'Mencari relawan terdekat…',
    'app.status.unmatched': 'Belum ada relawan. Koordinator sudah diberi tahu. Hubungi 112 bila bisa.',
    'app.status.cancel': 'Batalkan panggilan',
    'app.status.cancel.confirm': 'Tekan lagi untuk membatalkan',
    'app.status.new': 'Panggilan baru',
    'app.call112': 'Hubungi 112',
    'vol.title': 'KREKI — Relawan',
    'vol.signin.title': 'Masuk sebagai relawan',
    'vol.duty.on': 'Bertugas',
    'vol.duty.off': 'Tidak bertugas',
    'vol.duty.aria': 'Status tugas',
    'vol.duty.kinds': 'Dapat menerima: {kinds}',
    'vol.location.sent': 'Lokasi terkirim {time}.',
    'vol.location.waiting': 'Menunggu lokasi…',
    'vol.location.denied': 'Izin lokasi ditolak: tawaran tidak bisa diterima.',
    'vol.offers': 'Tawaran',
    'vol.offers.none': 'Belum ada tawaran. Tetap bertugas untuk menerimanya.',
    'vol.offer.distance': '{distance} dari Anda',
    'vol.offer.left': 'Sisa {s} detik',
    'vol.offer.expired': 'Waktu habis',
    'vol.offer.accept': 'Terima',
    'vol.offer.decline': 'Tolak',
    'vol.offer.covered': 'Kejadian ini sudah ditangani atau tawarannya berakhir.',
    'vol.assignment': 'Tugas aktif',
    'vol.navigate': 'Navigasi ke lokasi',
    'vol.navigate.osm': 'Buka di OpenStreetMap',
    'vol.status.en_route': 'Dalam perjalanan',
    'vol.status.on_scene': 'Sudah di lokasi',
    'vol.status.completed': 'Selesai',
    'vol.status.now': 'Status Anda: {status}',
    'push.on': 'Notifikasi aktif: tawaran sampai walau aplikasi tertutup.',
    'push.denied': 'Notifikasi diblokir: tawaran hanya muncul saat aplikasi terbuka.',
    'push.failed': 'Notifikasi belum bisa diaktifkan di peramban ini.',
    'app.push.button': 'Kabari saya lewat notifikasi',
    'app.push.on': 'Notifikasi aktif.',
    'dash.drill': 'Latihan',
    'dash.drill.aria': 'Latihan (simulasi), bukan keadaan darurat nyata',
    'tl.created': 'Panggilan dibuat',
    'tl.repeat_press': 'Tombol ditekan lagi',
    'tl.offers_sent': 'Tawaran gelombang {wave} ke {n} relawan (radius {radius})',
    'tl.offer_declined': 'Tawaran ditolak',
    'tl.accepted': 'Tawaran diterima ({distance})',
    'tl.assigned': 'Ditugaskan koordinator: {name}',
    'tl.assignment_status': 'Status relawan: {status}',
    'tl.cancelled': 'Dibatalkan',
    'tl.unmatched': 'Tidak ada relawan tersedia',
    'tl.waves_exhausted': 'Semua gelombang habis',
    'tl.resolved': 'Selesai',
    'tl.you': 'Anda',
  },
  en: {
    'lang.switch': 'Language',
    'common.login': 'Phone or email',
    'common.phone': 'Phone number',
    'common.password': 'Password',
    'common.name': 'Full name',
    'common.signin': 'Sign in',
    'common.register': 'Register',
    'common.signout': 'Sign out',
    'common.cancel': 'Cancel',
    'common.close': 'Close',
    'common.loading': 'Loading…',
    'common.error.network': 'No connection to the server. Retrying…',
    'common.error.signin': 'Wrong phone/email or password.',
    'common.error.generic': 'Something went wrong: {detail}',
    'common.error.unavailable': 'This service is not available on the server yet ({status}).',
    'common.error.role': 'This account is not a {role}.',
    'role.coordinator': 'coordinator',
    'role.volunteer': 'volunteer',
    'common.live.on': 'Live',
    'common.live.off': 'Disconnected, reconnecting…',
    'common.km': '{n} km',
    'common.m': '{n} m',
    'common.ago': '{n} min ago',
    'kind.medical': 'Medical',
    'kind.cardiac_arrest': 'Cardiac arrest',
    'kind.accident': 'Accident',
    'kind.fire': 'Fire',
    'kind.disaster': 'Disaster',
    'kind.security': 'Security',
    'kind.other': 'Other',
    'status.dispatching': 'Finding volunteers',
    'status.assigned': 'Volunteer assigned',
    'status.on_scene': 'Volunteer on scene',
    'status.resolved': 'Resolved',
    'status.cancelled': 'Cancelled',
    'status.unmatched': 'No volunteer found',
    'astatus.accepted': 'Accepted',
    'astatus.en_route': 'En route',
    'astatus.on_scene': 'On scene',
    'astatus.completed': 'Completed',
    'astatus.withdrawn': 'Withdrawn',
    'dash.title': 'KREKI — Coordinator dashboard',
    'dash.signin.title': 'Sign in as coordinator',
    'dash.map': 'Live map of emergencies and volunteers',
    'dash.fig.open': 'Open alerts',
    'dash.fig.unmatched': 'Unmatched',
    'dash.fig.median': 'Median time to first accept (today)',
    'dash.fig.volunteers': 'Volunteers on duty',
    'dash.filter.status': 'Status',
    'dash.filter.kind': 'Kind',
    'dash.filter.all': 'All',
    'dash.filter.open': 'Open',
    'dash.list': 'Alerts',
    'dash.list.empty': 'No matching alerts.',
    'dash.detail': 'Alert detail',
    'dash.detail.citizen': 'Reported by',
    'dash.detail.created': 'Created',
    'dash.detail.note': 'Note',
    'dash.detail.responders': 'Responders',
    'dash.detail.none': 'None yet.',
    'dash.timeline': 'Timeline',
    'dash.assign': 'Assign manually',
    'dash.assign.hint': 'On-duty volunteers, nearest first.',
    'dash.assign.button': 'Assign {name}',
    'dash.assign.none': 'No free volunteer nearby.',
    'dash.assign.done': '{name} assigned.',
    'dash.cancel.reason': 'Reason for cancelling',
    'dash.cancel.done': 'Alert cancelled.',
    'dash.legend': 'Legend',
    'dash.legend.alert': 'Alert (letters = kind)',
    'dash.legend.free': 'Free volunteer',
    'dash.legend.busy': 'Busy volunteer',
    'dash.legend.line': 'Line: volunteer heading to alert',
    'dash.volunteer.free': 'free',
    'dash.volunteer.busy': 'busy',
    'app.title': 'KREKI — Panic button',
    'app.signin.title': 'Sign in or register',
    'app.kind': 'Kind of emergency',
    'app.panic': 'HELP',
    'app.panic.aria': 'Send an emergency call now',
    'app.panic.hint': 'Press once. Your location goes to the nearest volunteers.',
    'app.location.asking': 'Asking for location permission…',
    'app.location.ok': 'Location ready (±{n} m).',
    'app.location.denied': 'Location permission denied. Turn location on so volunteers can find you.',
    'app.location.unavailable': 'Location not available yet.',
    'app.sending': 'Sending your emergency call…',
    'app.sending.retry': 'Not sent yet. Retrying (attempt {n})…',
    'app.sending.keep': 'Keep the app open. The same call is sent until it arrives.',
    'app.status.title': 'Help is being arranged',
    'app.status.coming': '{name} is coming ({distance})',
    'app.status.searching': 'Finding the nearest volunteers…',
    'app.status.unmatched': 'No volunteer yet. Coordinators have been told. Call 112 if you can.',
    'app.status.cancel': 'Cancel the call',
    'app.status.cancel.confirm': 'Press again to cancel',
    'app.status.new': 'New call',
    'app.call112': 'Call 112',
    'vol.title': 'KREKI — Volunteer',
    'vol.signin.title': 'Sign in as volunteer',
    'vol.duty.on': 'On duty',
    'vol.duty.off': 'Off duty',
    'vol.duty.aria': 'Duty status',
    'vol.duty.kinds': 'Can take: {kinds}',
    'vol.location.sent': 'Location sent {time}.',
    'vol.location.waiting': 'Waiting for location…',
    'vol.location.denied': 'Location permission denied: offers cannot reach you.',
    'vol.offers': 'Offers',
    'vol.offers.none': 'No offers yet. Stay on duty to receive them.',
    'vol.offer.distance': '{distance} from you',
    'vol.offer.left': '{s} s left',
    'vol.offer.expired': 'Time is up',
    'vol.offer.accept': 'Accept',
    'vol.offer.decline': 'Decline',
    'vol.offer.covered': 'This alert is already covered or the offer ended.',
    'vol.assignment': 'Active assignment',
    'vol.navigate': 'Navigate to the scene',
    'vol.navigate.osm': 'Open in OpenStreetMap',
    'vol.status.en_route': 'En route',
    'vol.status.on_scene': 'On scene',
    'vol.status.completed': 'Completed',
    'vol.status.now': 'Your status: {status}',
    'push.on': 'Notifications on: offers reach you even when the app is closed.',
    'push.denied': 'Notifications blocked: offers show only while the app is open.',
    'push.failed': 'Notifications could not be turned on in this browser.',
    'app.push.button': 'Notify me',
    'app.push.on': 'Notifications on.',
    'dash.drill': 'Drill',
    'dash.drill.aria': 'Drill (simulated), not a real emergency',
    'tl.created': 'Call made',
    'tl.repeat_press': 'Button pressed again',
    'tl.offers_sent': 'Wave {wave} offered to {n} volunteers (radius {radius})',
    'tl.offer_declined': 'Offer declined',
    'tl.accepted': 'Offer accepted ({distance})',
    'tl.assigned': 'Assigned by a coordinator: {name}',
    'tl.assignment_status': 'Volunteer status: {status}',
    'tl.cancelled': 'Cancelled',
    'tl.unmatched': 'No volunteer available',
    'tl.waves_exhausted': 'All waves used up',
    'tl.resolved': 'Resolved',
    'tl.you': 'you',
  },
};

/// The languages offered, in the order of the switch.
export const LANGUAGES = ['id', 'en'];
const STORE = 'kreki.lang';
const listeners = new Set();

/** The current language: the stored choice, else Indonesian. */
export function lang() {
  const stored = localStorage.getItem(STORE);
  return LANGUAGES.includes(stored) ? stored : 'id';
}

/** The text for `key` in the current language, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = TEXT[lang()][key] ?? TEXT.id[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Fills every data-i18n* element under `root`. */
export function applyI18n(root = document) {
  document.documentElement.lang = lang();
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const button of root.querySelectorAll('[data-lang]')) {
    button.setAttribute('aria-pressed', String(button.dataset.lang === lang()));
  }
}

/** Switches the language, re-labels the page and tells `onLanguage` listeners (to redraw). */
export function setLang(next) {
  if (!LANGUAGES.includes(next)) return;
  localStorage.setItem(STORE, next);
  applyI18n();
  for (const listener of listeners) listener(next);
}

/** Calls `listener` after every language change. */
export function onLanguage(listener) {
  listeners.add(listener);
}

/** Wires the ID/EN buttons (`[data-lang]`) and labels the page. */
export function initI18n() {
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.addEventListener('click', () => setLang(button.dataset.lang));
  }
  applyI18n();
}

/** A distance for people: metres below 1 km, else km with one decimal. */
export function distance(m) {
  if (typeof m !== 'number' || !Number.isFinite(m)) return '—';
  return m < 1000 ? t('common.m', { n: Math.round(m) }) : t('common.km', { n: (m / 1000).toFixed(1) });
}

/** A time for people, in Asia/Jakarta (UTC stays on the wire). */
export function clock(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '—';
  return date.toLocaleTimeString(lang() === 'id' ? 'id-ID' : 'en-GB', {
    timeZone: 'Asia/Jakarta', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }) + ' WIB';
}
