-- NIKs are sealed at rest (platform::pii): columns that held 16 plain digits now hold envelopes
-- `v1:<key id>:<base64url(nonce, AES-256-GCM ciphertext, tag)>`. Rows written before this migration
-- are sealed by `kreki pii reseal` (which `kreki serve` also runs at start, in batches), because
-- the keys live in the configuration, not in the database.

ALTER TABLE bridge.incidents DROP CONSTRAINT IF EXISTS incidents_patient_nik_check;
ALTER TABLE bridge.practitioners DROP CONSTRAINT IF EXISTS practitioners_nik_check;

-- The keyed search hash (HMAC-SHA256 under pii.search_key) of the NIK a volunteer verified with:
-- the only way to find a practitioner by NIK. It stays when the sealed NIK is cleared after
-- SATUSEHAT answered, so one NIK cannot be verified for two accounts.
ALTER TABLE bridge.practitioners ADD COLUMN nik_hash bytea;
CREATE INDEX practitioners_nik_hash_idx ON bridge.practitioners (nik_hash) WHERE nik_hash IS NOT NULL;

-- A guard, not the mechanism: a write that would store plain digits fails. Triggers rather than a
-- CHECK so that rows still waiting for the reseal batch can be updated in other columns meanwhile
-- (the WHEN clauses look only at a NIK being written), and the hot path pays nothing when no NIK is
-- given.
CREATE FUNCTION dispatch.refuse_unsealed_nik() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a NIK must be sealed (v1:<key id>:...) before it is stored in %.%',
        TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER alerts_patient_nik_sealed_insert BEFORE INSERT ON dispatch.alerts FOR EACH ROW
    WHEN (NEW.patient_nik IS NOT NULL AND NEW.patient_nik NOT LIKE 'v1:%')
    EXECUTE FUNCTION dispatch.refuse_unsealed_nik('patient_nik');
CREATE TRIGGER alerts_patient_nik_sealed_update BEFORE UPDATE OF patient_nik ON dispatch.alerts FOR EACH ROW
    WHEN (NEW.patient_nik IS DISTINCT FROM OLD.patient_nik AND NEW.patient_nik NOT LIKE 'v1:%')
    EXECUTE FUNCTION dispatch.refuse_unsealed_nik('patient_nik');

CREATE FUNCTION bridge.refuse_unsealed_nik() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a NIK must be sealed (v1:<key id>:...) before it is stored in %.%',
        TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER incidents_patient_nik_sealed_insert BEFORE INSERT ON bridge.incidents FOR EACH ROW
    WHEN (NEW.patient_nik IS NOT NULL AND NEW.patient_nik NOT LIKE 'v1:%')
    EXECUTE FUNCTION bridge.refuse_unsealed_nik('patient_nik');
CREATE TRIGGER incidents_patient_nik_sealed_update BEFORE UPDATE OF patient_nik ON bridge.incidents FOR EACH ROW
    WHEN (NEW.patient_nik IS DISTINCT FROM OLD.patient_nik AND NEW.patient_nik NOT LIKE 'v1:%')
    EXECUTE FUNCTION bridge.refuse_unsealed_nik('patient_nik');
CREATE TRIGGER practitioners_nik_sealed_insert BEFORE INSERT ON bridge.practitioners FOR EACH ROW
    WHEN (NEW.nik IS NOT NULL AND NEW.nik NOT LIKE 'v1:%')
    EXECUTE FUNCTION bridge.refuse_unsealed_nik('nik');
CREATE TRIGGER practitioners_nik_sealed_update BEFORE UPDATE OF nik ON bridge.practitioners FOR EACH ROW
    WHEN (NEW.nik IS DISTINCT FROM OLD.nik AND NEW.nik NOT LIKE 'v1:%')
    EXECUTE FUNCTION bridge.refuse_unsealed_nik('nik');

-- The reseal batch finds rows not yet under the current key with these (small: only rows with a NIK).
CREATE INDEX alerts_patient_nik_idx ON dispatch.alerts (id) WHERE patient_nik IS NOT NULL;
CREATE INDEX incidents_patient_nik_idx ON bridge.incidents (alert_id) WHERE patient_nik IS NOT NULL;
