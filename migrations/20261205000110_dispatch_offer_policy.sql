-- Offer policy and responder roles per kind (dispatch/src/wave.rs), the end of the current wave,
-- and the role (and AED) of each assignment.

-- How offers go out within the waves: pending at once, replacement of decliners and of offers that
-- lapse, most volunteers disturbed. The default is how waves always worked.
ALTER TABLE dispatch.kind_settings
    ADD COLUMN policy jsonb NOT NULL
        DEFAULT '{"live_offers": 100, "replace_on_decline": false, "replace_on_expiry": false, "max_alerted": 500}',
    ADD COLUMN roles text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT kind_settings_policy_object CHECK (jsonb_typeof(policy) = 'object'),
    ADD CONSTRAINT kind_settings_roles_known CHECK (roles <@ ARRAY['cpr', 'aed', 'lead']);

-- When the current wave ends and the next, wider one starts. With replacement, offers keep their
-- own deadlines, so the wave's timer may fall due before its end (an offer lapsed).
ALTER TABLE dispatch.alerts ADD COLUMN wave_ends_at timestamptz;

-- What a responder does on scene, and for `aed` the AED they fetch on the way.
ALTER TABLE dispatch.assignments
    ADD COLUMN role text,
    ADD COLUMN aed_id uuid,
    ADD COLUMN aed_distance_via_m double precision,
    ADD CONSTRAINT assignments_role_known CHECK (role IN ('cpr', 'aed', 'lead'));
-- One responder per role per alert while active.
CREATE UNIQUE INDEX assignments_one_active_role ON dispatch.assignments (alert_id, role)
    WHERE role IS NOT NULL AND status IN ('accepted', 'en_route', 'on_scene');

-- An outbox row asks for the alert's next wave (`wave`) or for its declined offers to be replaced
-- within the current one (`replace`).
ALTER TABLE dispatch.outbox
    ADD COLUMN reason text NOT NULL DEFAULT 'wave',
    ADD CONSTRAINT outbox_reason_known CHECK (reason IN ('wave', 'replace'));
