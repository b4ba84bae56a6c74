// The server's field errors in Bahasa Indonesia. The API words its 422 problems in English (one
// text for every client); the pages show the common ones in Indonesian when Indonesian is chosen,
// and any other in the server's own words, so no refusal is ever hidden. Each rule is a pattern of
// the server's text and its Indonesian form ($1.. are the numbers and names it carries).

const UNITS = { characters: 'karakter', metres: 'meter', seconds: 'detik', minutes: 'menit', days: 'hari' };

const RULES = [
  [/^is required$/, 'wajib diisi'],
  [/^must be (\d+) to (\d+)$/, 'harus $1 sampai $2'],
  [/^must be (\d+) to (\d+) (characters|metres|seconds|minutes|days)$/, (_, a, b, unit) => `harus ${a} sampai ${b} ${UNITS[unit]}`],
  [/^must be at most (\d+) (characters|metres|seconds|minutes|days)(.*)$/, (_, n, unit) => `paling banyak ${n} ${UNITS[unit]}`],
  [/^must be at least (\d+) (characters|metres|seconds|minutes|days)$/, (_, n, unit) => `paling sedikit ${n} ${UNITS[unit]}`],
  [/^must be a whole number$/, 'harus bilangan bulat'],
  [/^must be true or false$/, 'harus true atau false'],
  [/^must not be in the future$/, 'tidak boleh di masa depan'],
  [/^must be an absolute https URL$/, 'harus alamat https lengkap'],
  [/^must list at least one scope$/, 'pilih paling sedikit satu cakupan'],
  [/^must list (\d+) to (\d+) waves$/, 'harus $1 sampai $2 gelombang'],
  [/^must not repeat a role$/, 'peran tidak boleh diulang'],
  [/^must list at most responders_needed roles$/, 'peran tidak boleh lebih banyak dari relawan yang dibutuhkan'],
  [/^must be inside Indonesia \(latitude (\S+) to (\S+)\)$/, 'harus di wilayah Indonesia (lintang $1 sampai $2)'],
  [/^must be inside Indonesia \(longitude (\S+) to (\S+)\)$/, 'harus di wilayah Indonesia (bujur $1 sampai $2)'],
  [/^must be 0 \(Sunday\) to 6 \(Saturday\)$/, 'harus 0 (Minggu) sampai 6 (Sabtu)'],
  [/^must be a time HH:MM from (\S+) to (\S+) \(Asia\/Jakarta\)$/, 'harus jam JJ:MM dari $1 sampai $2 (WIB)'],
  [/^must be after open \((\S+)\).*$/, 'harus setelah jam buka ($1); jam yang lewat tengah malam dipisah: …–24:00, lalu 00:00–… hari berikutnya'],
  [/^overlaps (\S+) on the same day$/, 'bertumpuk dengan $1 di hari yang sama'],
  [/^must say where exactly the device is.*$/, 'sebutkan tempat persisnya (mis. lobi, samping lift)'],
  [/^must be wider than the alert's widest wave \((\d+) m\)$/, 'harus lebih luas dari gelombang terluasnya ($1 m)'],
  [/^must be 1 \(very bad\) to 5 \(fine\)$/, 'harus 1 (sangat buruk) sampai 5 (baik)'],
  [/^must be a certification code such as .*$/, 'harus kode sertifikasi, mis. bls atau first_aid'],
  [/^must be an e-mail address such as .*$/, 'harus alamat email, mis. ani@example.id'],
  [/^must have (\d+) to (\d+) (options|modules|questions)$/, (_, a, b, what) => `harus ${a} sampai ${b} ${{ options: 'pilihan', modules: 'modul', questions: 'soal' }[what]}`],
];

/** The server's `message` in `lang`: Indonesian when a rule knows it, else unchanged. */
export function fieldMessage(message, lang) {
  if (lang !== 'id' || typeof message !== 'string') return message;
  for (const [pattern, indonesian] of RULES) {
    if (pattern.test(message)) return message.replace(pattern, indonesian);
  }
  return message;
}
