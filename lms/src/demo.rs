//! Built-in demo content: "Bantuan Hidup Dasar (BLS)" and "Pertolongan Pertama (first aid)", in
//! Bahasa Indonesia with English titles, each with a real outline and a final quiz. The outlines
//! follow the AHA/ERC basic life support and first-aid guidance for lay responders.
//!
//! [`load`] is idempotent: each course is stored under a fixed slug, so loading again (or from two
//! processes at once) changes nothing.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::course::CourseDefinition;
use crate::error::{LmsError, LmsResult};
use crate::service::LmsService;

/// Slug of the demo BLS course.
pub const BLS_SLUG: &str = "demo-bls";
/// Slug of the demo first-aid course.
pub const FIRST_AID_SLUG: &str = "demo-first-aid";

fn single(prompt: &str, options: &[(&str, bool)]) -> Value {
    question("single", prompt, options)
}

fn multiple(prompt: &str, options: &[(&str, bool)]) -> Value {
    question("multiple", prompt, options)
}

fn question(kind: &str, prompt: &str, options: &[(&str, bool)]) -> Value {
    let options: Vec<Value> = options
        .iter()
        .map(|(text, correct)| json!({"text": text, "correct": correct}))
        .collect();
    json!({"kind": kind, "prompt": prompt, "options": options})
}

fn lesson(title: &str, body_md: &str) -> Value {
    json!({"title": title, "body_md": body_md})
}

/// The BLS course definition.
pub fn bls_course() -> Value {
    json!({
        "title": "Bantuan Hidup Dasar (BLS)",
        "title_en": "Basic Life Support (BLS)",
        "language": "id",
        "certification": "bls",
        "description": "Mengenali henti jantung, memanggil 119, melakukan kompresi dada berkualitas tinggi dan memakai AED sampai bantuan medis tiba. (Recognise cardiac arrest, call 119, give high-quality chest compressions and use an AED until help arrives.)",
        "modules": [
            {
                "title": "Mengenali henti jantung (Recognising cardiac arrest)",
                "lessons": [
                    lesson("Pastikan lokasi aman", "## Aman dulu\n\nSebelum mendekat, pastikan **aman untuk Anda, lingkungan, dan korban**: lalu lintas, listrik, api, gas, bangunan runtuh. Penolong yang ikut menjadi korban tidak menolong siapa pun.\n\n- Pakai sarung tangan bila ada.\n- Jika tidak aman, jangan mendekat: hubungi 119 dan tunggu petugas."),
                    lesson("Periksa respons dan napas", "## Tepuk dan panggil\n\nTepuk kedua bahu korban dan panggil dengan keras: *\"Pak/Bu, bisa dengar saya?\"*\n\n## Lihat napasnya (maksimal 10 detik)\n\nLihat dada dan perut. Korban yang **tidak merespons dan tidak bernapas, atau hanya megap-megap (gasping)**, mengalami henti jantung. Napas megap-megap **bukan** napas normal: segera mulai RJP."),
                    lesson("Panggil 119 dan minta AED", "## Telepon 119\n\nTunjuk satu orang: *\"Anda, telepon 119 dan ambil AED!\"* Jika sendirian, telepon 119 sendiri dengan pengeras suara (speaker) menyala sambil memulai kompresi.\n\nSebutkan: lokasi tepat, korban tidak sadar dan tidak bernapas normal. Ikuti arahan petugas 119.")
                ],
                "quizzes": []
            },
            {
                "title": "Kompresi dada berkualitas tinggi (High-quality chest compressions)",
                "lessons": [
                    lesson("Posisi tangan dan tubuh", "## Di tengah dada\n\nBaringkan korban telentang di permukaan keras. Letakkan pangkal telapak tangan di **tengah dada (separuh bawah tulang dada)**, tangan lain di atasnya, jari saling mengunci. Bahu tepat di atas tangan, **lengan lurus**, tekan dengan berat badan."),
                    lesson("Kecepatan, kedalaman, recoil", "## Tekan cepat dan dalam\n\n- Kecepatan **100–120 kali per menit** (irama lagu *Stayin' Alive*).\n- Kedalaman **5–6 cm** pada dewasa.\n- Biarkan dada **mengembang penuh (full recoil)** setelah setiap tekanan; jangan bertumpu di dada.\n- Jeda sesingkat mungkin: **kurang dari 10 detik**.\n- Bergantian dengan penolong lain setiap 2 menit agar kompresi tetap efektif."),
                    lesson("30:2 dan RJP hanya tangan", "## 30 kompresi : 2 napas\n\nJika terlatih dan bersedia: setelah 30 kompresi, buka jalan napas (**tengadahkan kepala, angkat dagu**), tutup hidung, beri **2 napas bantuan** masing-masing sekitar 1 detik sampai dada terangkat, lalu lanjut 30 kompresi.\n\nJika tidak terlatih atau tidak bersedia memberi napas: lakukan **RJP hanya tangan (hands-only)**, kompresi terus-menerus tanpa berhenti.")
                ],
                "quizzes": []
            },
            {
                "title": "Memakai AED (Using an AED)",
                "lessons": [
                    {
                        "title": "Langkah memakai AED",
                        "body_md": "## Nyalakan dan ikuti suaranya\n\n1. **Nyalakan** AED segera setelah tiba; ikuti instruksi suara.\n2. Buka baju dada korban, keringkan dada bila basah.\n3. Tempel **bantalan**: satu di bawah tulang selangka kanan, satu di sisi kiri dada di bawah ketiak.\n4. Saat AED **menganalisis**, jangan ada yang menyentuh korban.\n5. Jika diminta kejut (shock): pastikan semua menjauh (*\"Semua menjauh!\"*), tekan tombol kejut.\n6. **Segera lanjutkan RJP** 2 menit, mulai dari kompresi, lalu ikuti AED lagi.",
                        "attachments": [
                            {"title": "AHA CPR & ECC Guidelines", "url": "https://cpr.heart.org/en/resuscitation-science/cpr-and-ecc-guidelines"},
                            {"title": "ERC Guidelines", "url": "https://www.cprguidelines.eu/"}
                        ]
                    },
                    lesson("Kapan berhenti", "## Teruskan sampai\n\n- korban mulai **bernapas normal**, bergerak, atau membuka mata;\n- **petugas medis mengambil alih**;\n- Anda terlalu lelah untuk melanjutkan, atau lokasi menjadi tidak aman.\n\nJika korban bernapas normal tetapi tidak sadar, letakkan dalam **posisi pemulihan** dan terus pantau napasnya.")
                ],
                "quizzes": [
                    {
                        "title": "Kuis akhir BLS (BLS final quiz)",
                        "pass_mark_pct": 80,
                        "max_attempts": 3,
                        "cooldown_s": 3600,
                        "questions": [
                            single("Korban tidak merespons dan hanya megap-megap (gasping). Apa artinya?", &[
                                ("Ia bernapas normal; tunggu saja", false),
                                ("Tanda henti jantung: panggil 119 dan mulai RJP", true),
                                ("Ia tertidur; biarkan", false),
                                ("Berikan minum", false)
                            ]),
                            single("Nomor darurat medis yang dihubungi di Indonesia adalah", &[
                                ("110", false), ("113", false), ("119", true), ("911 saja", false)
                            ]),
                            single("Kecepatan kompresi dada pada dewasa adalah", &[
                                ("60–80 per menit", false), ("100–120 per menit", true), ("140–160 per menit", false), ("Sepelan mungkin", false)
                            ]),
                            single("Kedalaman kompresi dada pada dewasa adalah", &[
                                ("1–2 cm", false), ("3–4 cm", false), ("5–6 cm", true), ("Lebih dari 8 cm", false)
                            ]),
                            single("Perbandingan kompresi dan napas bantuan untuk penolong terlatih adalah", &[
                                ("15:1", false), ("30:2", true), ("5:1", false), ("50:5", false)
                            ]),
                            multiple("Mana saja ciri kompresi dada berkualitas tinggi? (pilih semua yang benar)", &[
                                ("Dada dibiarkan mengembang penuh setelah tiap tekanan", true),
                                ("Jeda kompresi kurang dari 10 detik", true),
                                ("Lengan ditekuk agar tidak lelah", false),
                                ("Tangan di tengah dada, separuh bawah tulang dada", true),
                                ("Berhenti tiap 10 kompresi untuk memeriksa nadi", false)
                            ]),
                            multiple("Saat memakai AED, apa yang benar? (pilih semua yang benar)", &[
                                ("Nyalakan AED dan ikuti instruksi suaranya", true),
                                ("Jangan menyentuh korban saat AED menganalisis", true),
                                ("Setelah kejut, segera lanjutkan RJP mulai dari kompresi", true),
                                ("Tunggu 5 menit setelah kejut sebelum RJP", false)
                            ]),
                            single("Kapan Anda boleh berhenti melakukan RJP?", &[
                                ("Setelah 1 menit", false),
                                ("Ketika korban bernapas normal atau petugas medis mengambil alih", true),
                                ("Ketika ada penonton", false),
                                ("Setelah kejut pertama AED", false)
                            ])
                        ]
                    }
                ]
            }
        ]
    })
}

/// The first-aid course definition.
pub fn first_aid_course() -> Value {
    json!({
        "title": "Pertolongan Pertama",
        "title_en": "First Aid",
        "language": "id",
        "certification": "first_aid",
        "description": "Pertolongan pertama untuk relawan: keamanan lokasi, menghentikan perdarahan, posisi pemulihan, tersedak dan luka bakar. (First aid for volunteers: scene safety, bleeding control, recovery position, choking and burns.)",
        "modules": [
            {
                "title": "Prinsip pertolongan pertama (First-aid principles)",
                "lessons": [
                    lesson("Keamanan lokasi dan perlindungan diri", "## Aman dulu\n\nNilai bahaya sebelum mendekat: lalu lintas, api, listrik, air, kerumunan. Pakai **sarung tangan** bila ada kontak dengan darah atau cairan tubuh. Jika tidak aman, tunggu petugas."),
                    lesson("Menilai korban dan memanggil 119", "## Periksa, panggil, tolong\n\nPeriksa respons dan napas. Korban yang tidak sadar dan tidak bernapas normal perlu **RJP** (lihat kursus BLS). Hubungi **119** untuk cedera berat, perdarahan hebat, sesak napas, nyeri dada, tidak sadar, atau luka bakar luas. Jangan memindahkan korban yang diduga cedera tulang belakang kecuali ada bahaya.")
                ],
                "quizzes": []
            },
            {
                "title": "Menghentikan perdarahan (Bleeding control)",
                "lessons": [
                    lesson("Tekanan langsung", "## Tekan kuat dan lama\n\n1. Tekan luka **langsung dan kuat** dengan kasa atau kain bersih.\n2. Jika darah merembes, **tambahkan** kain di atasnya; jangan angkat yang pertama.\n3. Pertahankan tekanan sampai perdarahan berhenti atau petugas tiba; pasang **balut tekan**.\n4. **Jangan mencabut** benda yang menancap; tekan di sekitarnya dan stabilkan."),
                    lesson("Torniket", "## Untuk perdarahan anggota gerak yang mengancam nyawa\n\nJika tekanan langsung tidak menghentikan perdarahan hebat di lengan atau tungkai, pasang **torniket 5–7 cm di atas luka** (bukan di sendi), kencangkan sampai perdarahan berhenti, dan **catat jamnya**. Jangan dilepas; serahkan ke petugas medis.")
                ],
                "quizzes": []
            },
            {
                "title": "Posisi pemulihan dan tersedak (Recovery position and choking)",
                "lessons": [
                    lesson("Posisi pemulihan", "## Untuk korban tidak sadar yang bernapas normal\n\nMiringkan korban ke sisinya, kepala sedikit tengadah agar jalan napas terbuka dan muntahan dapat keluar; tangan atas menopang pipi, lutut atas ditekuk untuk menahan posisi. **Pantau napas** terus; jika berhenti bernapas normal, mulai RJP."),
                    lesson("Tersedak pada dewasa", "## Batuk efektif? Dorong terus batuk\n\nJika korban masih bisa batuk atau bicara, minta ia **terus batuk**.\n\n## Tidak bisa bicara atau batuk\n\n- Berikan **5 tepukan punggung** di antara tulang belikat, dengan korban membungkuk ke depan.\n- Lalu **5 hentakan perut** (manuver Heimlich): kepalan tangan di atas pusar, tarik ke dalam dan ke atas.\n- Ulangi bergantian sampai benda keluar.\n- Jika korban menjadi tidak sadar: panggil 119 dan **mulai RJP**.")
                ],
                "quizzes": []
            },
            {
                "title": "Luka bakar (Burns)",
                "lessons": [
                    lesson("Dinginkan, lindungi, rujuk", "## Dinginkan dengan air mengalir\n\n1. Hentikan proses terbakar; jauhkan dari sumber panas atau listrik.\n2. **Alirkan air bersih bersuhu biasa selama 20 menit**.\n3. Lepaskan perhiasan dan pakaian di sekitar luka (kecuali yang menempel).\n4. Tutup longgar dengan **plastik wrap atau kasa steril**.\n\n**Jangan** oleskan pasta gigi, mentega, minyak, kecap, atau es; jangan pecahkan lepuh.\n\nHubungi **119** untuk luka bakar luas, di wajah, tangan, kelamin, saluran napas, luka bakar listrik atau kimia, atau pada bayi dan lansia.")
                ],
                "quizzes": [
                    {
                        "title": "Kuis akhir pertolongan pertama (First-aid final quiz)",
                        "pass_mark_pct": 80,
                        "max_attempts": 3,
                        "cooldown_s": 3600,
                        "questions": [
                            single("Apa langkah pertama sebelum menolong korban di jalan raya?", &[
                                ("Langsung memindahkan korban", false),
                                ("Memastikan lokasi aman bagi diri sendiri, korban dan orang lain", true),
                                ("Memberi minum", false),
                                ("Memotret kejadian", false)
                            ]),
                            single("Luka di lengan berdarah deras. Tindakan pertama yang benar adalah", &[
                                ("Menekan luka langsung dan kuat dengan kain bersih", true),
                                ("Membersihkan luka dengan alkohol dulu", false),
                                ("Mengangkat kain tiap menit untuk melihat luka", false),
                                ("Menunggu darah berhenti sendiri", false)
                            ]),
                            multiple("Tentang torniket, mana yang benar? (pilih semua yang benar)", &[
                                ("Dipakai bila tekanan langsung gagal menghentikan perdarahan hebat di anggota gerak", true),
                                ("Dipasang 5–7 cm di atas luka, tidak di sendi", true),
                                ("Jam pemasangan dicatat", true),
                                ("Dilonggarkan tiap 5 menit oleh penolong", false)
                            ]),
                            single("Korban tidak sadar tetapi bernapas normal. Posisikan ia dalam", &[
                                ("Posisi duduk", false),
                                ("Posisi pemulihan (miring)", true),
                                ("Telentang dengan bantal tinggi", false),
                                ("Tengkurap", false)
                            ]),
                            single("Orang dewasa tersedak, tidak bisa bicara maupun batuk. Lakukan", &[
                                ("Beri minum air", false),
                                ("5 tepukan punggung lalu 5 hentakan perut, bergantian", true),
                                ("Masukkan jari ke tenggorokan tanpa melihat", false),
                                ("Tunggu sampai ia pingsan", false)
                            ]),
                            multiple("Untuk luka bakar, mana yang benar? (pilih semua yang benar)", &[
                                ("Alirkan air bersih bersuhu biasa selama 20 menit", true),
                                ("Oleskan pasta gigi atau mentega", false),
                                ("Lepaskan perhiasan di sekitar luka", true),
                                ("Tutup longgar dengan plastik wrap atau kasa steril", true),
                                ("Pecahkan lepuh agar cepat kering", false)
                            ])
                        ]
                    }
                ]
            }
        ]
    })
}

fn parse(value: Value) -> LmsResult<CourseDefinition> {
    serde_json::from_value(value)
        .map_err(|error| LmsError::Internal(format!("built-in course does not parse: {error}")))
}

/// Loads the demo courses if they are missing and returns their ids (BLS, then first aid).
/// Idempotent, also when two processes load at once.
///
/// # Errors
/// Database errors.
pub async fn load(service: &LmsService, trainer: Option<Uuid>) -> LmsResult<Vec<Uuid>> {
    let mut ids = Vec::new();
    for (slug, definition) in [
        (BLS_SLUG, bls_course()),
        (FIRST_AID_SLUG, first_aid_course()),
    ] {
        let definition = parse(definition)?;
        let id = match service.course_id_by_slug(slug).await? {
            Some(id) => id,
            None => match service
                .insert_course(&definition, Some(slug), None, trainer)
                .await
            {
                Ok(id) => id,
                Err(LmsError::Database(error))
                    if kreki_platform::db::unique_violation(&error) == Some("courses_slug_key") =>
                {
                    service
                        .course_id_by_slug(slug)
                        .await?
                        .ok_or(LmsError::Internal("demo course vanished".into()))?
                }
                Err(error) => return Err(error),
            },
        };
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_courses_are_valid() {
        for course in [bls_course(), first_aid_course()] {
            let definition = parse(course).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(definition.validate(), Vec::new(), "{}", definition.title);
            assert!(definition.title_en.is_some());
        }
    }

    #[test]
    fn bls_outline_covers_the_essentials() {
        let text = bls_course().to_string();
        for needle in [
            "119",
            "100–120",
            "5–6 cm",
            "recoil",
            "30:2",
            "AED",
            "gasping",
        ] {
            assert!(text.contains(needle), "BLS course mentions {needle}");
        }
        let text = first_aid_course().to_string();
        for needle in [
            "aman",
            "Torniket",
            "posisi pemulihan",
            "tersedak",
            "Luka bakar",
            "20 menit",
        ] {
            assert!(
                text.to_lowercase().contains(&needle.to_lowercase()),
                "first aid mentions {needle}"
            );
        }
    }
}
