-- Training and certification (LMS), in the `lms` schema: the certification catalogue, courses with
-- modules, lessons and quizzes, enrollments and progress, scored attempts, certificates (earned
-- here or elsewhere), and expiry reminders. No other service reads these tables: dispatch learns
-- who holds which valid certification through the LMS's Rust API.

CREATE SCHEMA IF NOT EXISTS lms;

-- What a volunteer can be certified for. `code` is the stable key dispatch's kind requirements use.
CREATE TABLE lms.certifications (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    validity_days integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT certifications_code_format CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    CONSTRAINT certifications_validity CHECK (validity_days BETWEEN 1 AND 3650)
);

INSERT INTO lms.certifications (code, name, validity_days) VALUES
    ('first_aid', 'Pertolongan Pertama (First Aid)', 730),
    ('bls', 'Bantuan Hidup Dasar (Basic Life Support)', 730),
    ('fire_basic', 'Pemadaman Kebakaran Dasar (Basic Firefighting)', 1095),
    ('disaster_response', 'Tanggap Bencana (Disaster Response)', 1095);

-- The name a person last used in the LMS (from their access token), so a certificate recorded by a
-- trainer can carry the holder's name without reading KREKI ID's tables.
CREATE TABLE lms.learners (
    user_id    uuid PRIMARY KEY,
    name       text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lms.courses (
    id            uuid PRIMARY KEY,
    -- Stable key of built-in content (the demo courses), so loading it again changes nothing.
    slug          text,
    title         text NOT NULL,
    title_en      text,
    description   text NOT NULL DEFAULT '',
    language      text NOT NULL DEFAULT 'id',
    -- Passing every quiz of the course issues a certificate of this certification.
    certification text REFERENCES lms.certifications (code),
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT courses_slug_key UNIQUE (slug)
);

CREATE TABLE lms.modules (
    id        uuid PRIMARY KEY,
    course_id uuid NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
    position  integer NOT NULL,
    title     text NOT NULL,
    CONSTRAINT modules_position_key UNIQUE (course_id, position)
);

CREATE TABLE lms.lessons (
    id          uuid PRIMARY KEY,
    module_id   uuid NOT NULL REFERENCES lms.modules (id) ON DELETE CASCADE,
    position    integer NOT NULL,
    title       text NOT NULL,
    body_md     text NOT NULL DEFAULT '',
    video_url   text,
    -- [{title, url}]: links to handouts, slides, posters.
    attachments jsonb NOT NULL DEFAULT '[]',
    CONSTRAINT lessons_position_key UNIQUE (module_id, position)
);

CREATE TABLE lms.quizzes (
    id            uuid PRIMARY KEY,
    module_id     uuid NOT NULL REFERENCES lms.modules (id) ON DELETE CASCADE,
    position      integer NOT NULL,
    title         text NOT NULL,
    pass_mark_pct integer NOT NULL,
    -- Failed attempts allowed in a row before the quiz locks for `cooldown_s`.
    max_attempts  integer NOT NULL,
    cooldown_s    integer NOT NULL,
    CONSTRAINT quizzes_position_key UNIQUE (module_id, position),
    CONSTRAINT quizzes_pass_mark CHECK (pass_mark_pct BETWEEN 1 AND 100),
    CONSTRAINT quizzes_max_attempts CHECK (max_attempts BETWEEN 1 AND 100),
    CONSTRAINT quizzes_cooldown CHECK (cooldown_s BETWEEN 0 AND 2592000)
);

CREATE TABLE lms.questions (
    id       uuid PRIMARY KEY,
    quiz_id  uuid NOT NULL REFERENCES lms.quizzes (id) ON DELETE CASCADE,
    position integer NOT NULL,
    kind     text NOT NULL,
    prompt   text NOT NULL,
    -- [{id, text}] in authored order; ids are `a`, `b`, ...
    options  jsonb NOT NULL,
    -- Ids of the correct options. Never leaves the server before an attempt is scored.
    correct  text[] NOT NULL,
    points   integer NOT NULL DEFAULT 1,
    CONSTRAINT questions_position_key UNIQUE (quiz_id, position),
    CONSTRAINT questions_kind CHECK (kind IN ('single', 'multiple')),
    CONSTRAINT questions_points CHECK (points BETWEEN 1 AND 100)
);
CREATE INDEX questions_quiz_idx ON lms.questions (quiz_id);

CREATE TABLE lms.enrollments (
    user_id     uuid NOT NULL,
    course_id   uuid NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    -- Only passes after this count towards the next certificate (reset when one is issued, so a
    -- renewal means passing every quiz again).
    cycle_started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (user_id, course_id)
);

CREATE TABLE lms.lesson_progress (
    user_id      uuid NOT NULL,
    lesson_id    uuid NOT NULL REFERENCES lms.lessons (id) ON DELETE CASCADE,
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, lesson_id)
);

-- One attempt at a quiz: started (questions shuffled), then scored once.
CREATE TABLE lms.attempts (
    id             uuid PRIMARY KEY,
    quiz_id        uuid NOT NULL REFERENCES lms.quizzes (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL,
    question_order uuid[] NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    -- An attempt not submitted by then can no longer be scored.
    expires_at     timestamptz NOT NULL,
    submitted_at   timestamptz,
    answers        jsonb,
    score_pct      double precision,
    passed         boolean,
    CONSTRAINT attempts_scored CHECK ((submitted_at IS NULL) = (passed IS NULL))
);
CREATE INDEX attempts_user_quiz_idx ON lms.attempts (user_id, quiz_id, started_at);

CREATE TABLE lms.certificates (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    certification text NOT NULL REFERENCES lms.certifications (code),
    -- The holder's name as it was when the certificate was issued (it is printed on it).
    holder_name   text NOT NULL,
    issued_at     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    -- Public verification code: 120 random bits, shown on the printed certificate.
    code          text NOT NULL,
    source        text NOT NULL,
    course_id     uuid REFERENCES lms.courses (id) ON DELETE SET NULL,
    -- The trainer who recorded a certificate earned elsewhere, and the evidence they saw.
    recorded_by   uuid,
    evidence      text,
    revoked_at    timestamptz,
    revoked_by    uuid,
    revoked_reason text,
    -- Set by the expiry sweep once it has told dispatch that this certificate lapsed.
    expiry_processed_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT certificates_code_key UNIQUE (code),
    CONSTRAINT certificates_source CHECK (source IN ('course', 'external')),
    CONSTRAINT certificates_period CHECK (expires_at > issued_at),
    CONSTRAINT certificates_revocation CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX certificates_user_idx ON lms.certificates (user_id);
-- The sweep's queue: live certificates whose expiry has not been acted on yet.
CREATE INDEX certificates_expiry_due_idx ON lms.certificates (expires_at)
    WHERE expiry_processed_at IS NULL AND revoked_at IS NULL;

-- Stored notifications (expiry reminders). One per certificate and kind, so several sweepers never
-- send one twice.
CREATE TABLE lms.notifications (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    certificate_id uuid REFERENCES lms.certificates (id) ON DELETE CASCADE,
    kind           text NOT NULL,
    message        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_once UNIQUE (certificate_id, kind)
);
CREATE INDEX notifications_user_idx ON lms.notifications (user_id, created_at DESC);
