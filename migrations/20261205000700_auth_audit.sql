-- Who looked at or erased whose personal data (UU PDP, Law 27/2022: accountability). Admins read it
-- through `GET /v1/admin/audit`; nobody changes it: rows are only ever inserted.

CREATE TABLE auth.audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    -- The account that acted (null: KREKI itself, for example a retention job).
    actor   uuid,
    -- What was done: `user.view`, `user.delete`, `user.self_delete`, `alert.caller_phone.view`, ...
    action  text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)*$'),
    -- Whose data (an account id). After an erasure this id names nobody any more.
    subject uuid,
    -- Why, as the actor gave it (or as the code path says).
    reason  text NOT NULL DEFAULT '' CHECK (char_length(reason) <= 500)
);
CREATE INDEX audit_log_subject_idx ON auth.audit_log (subject, at DESC);
CREATE INDEX audit_log_actor_idx ON auth.audit_log (actor, at DESC);

-- Append-only in the database itself, whatever the application does.
CREATE FUNCTION auth.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'auth.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_change
    BEFORE UPDATE OR DELETE ON auth.audit_log
    FOR EACH ROW EXECUTE FUNCTION auth.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON auth.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION auth.audit_log_append_only();
