-- Aftercare (dispatch/src/domain/checkins.rs): the outcome a coordinator records when resolving an
-- alert, and a check-in for every volunteer some time after their assignment ended.

-- How the incident ended (null until a coordinator resolves it), with their note.
ALTER TABLE dispatch.alerts
    ADD COLUMN outcome     text,
    ADD COLUMN outcome_note text,
    ADD COLUMN outcome_by  uuid,
    ADD COLUMN outcome_at  timestamptz,
    ADD CONSTRAINT alerts_outcome_known CHECK (outcome IN
        ('treated_on_scene', 'to_hospital', 'false_alarm', 'not_found', 'other'));

-- A time-ordered UUID (version 7) made in SQL, for rows a statement creates in bulk: the 48-bit
-- Unix time in milliseconds over a random v4 UUID, with the version bits set to 7.
CREATE FUNCTION dispatch.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(
            set_bit(
                overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;

-- One check-in per ended assignment: due `dispatch.checkin_after_s` after it ended, delivered once
-- (`sent_at`, claimed with FOR UPDATE SKIP LOCKED), answered once (`answered_at`).
CREATE TABLE dispatch.checkins (
    id                uuid PRIMARY KEY,
    assignment_id     uuid NOT NULL REFERENCES dispatch.assignments (id),
    alert_id          uuid NOT NULL REFERENCES dispatch.alerts (id),
    volunteer_id      uuid NOT NULL,
    volunteer_name    text NOT NULL,
    due_at            timestamptz NOT NULL,
    sent_at           timestamptz,
    answered_at       timestamptz,
    wellbeing         smallint CHECK (wellbeing BETWEEN 1 AND 5),
    wants_contact     boolean,
    note              text,
    -- wants_contact, or wellbeing 2 or lower: coordinators reach out.
    support_requested boolean,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkins_assignment_key UNIQUE (assignment_id),
    CONSTRAINT checkins_answer_whole CHECK (
        (answered_at IS NULL) = (wellbeing IS NULL)
        AND (answered_at IS NULL) = (wants_contact IS NULL)
        AND (answered_at IS NULL) = (support_requested IS NULL))
);
-- The delivery loop's claim: due, not yet sent, not answered.
CREATE INDEX checkins_due_idx ON dispatch.checkins (due_at) WHERE sent_at IS NULL AND answered_at IS NULL;
-- A volunteer's own check-ins.
CREATE INDEX checkins_volunteer_idx ON dispatch.checkins (volunteer_id, due_at DESC);
-- Coordinators' list of answers, newest first (support requests flagged).
CREATE INDEX checkins_answered_idx ON dispatch.checkins (answered_at DESC) WHERE answered_at IS NOT NULL;
