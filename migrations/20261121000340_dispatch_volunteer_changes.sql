-- Volunteer changes for every dispatch instance's matcher (issue 7, several instances).
--
-- Each `kreki` instance keeps its own in-memory matcher. It applies the changes it handles itself at
-- once, and catches up on every other instance's by reading the volunteers changed since its last
-- look. "Changed since" is tracked by the id of the transaction that last wrote the row
-- (`change_xid`), which a reader compares with the `xmin` of its previous snapshot: every
-- transaction not visible to that snapshot has an id at or above its xmin, so nothing committed
-- late is skipped (a bigserial or a timestamp would be taken before commit and could land below a
-- cursor that already moved past it).

ALTER TABLE dispatch.volunteers
    ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

-- Keyset order of the catch-up read.
CREATE INDEX volunteers_change_xid_idx ON dispatch.volunteers (change_xid, user_id);

-- Every write of a volunteer row stamps it, whoever writes it (positions, duty, rest, verification).
CREATE FUNCTION dispatch.stamp_volunteer_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE TRIGGER volunteers_stamp_change
    BEFORE INSERT OR UPDATE ON dispatch.volunteers
    FOR EACH ROW EXECUTE FUNCTION dispatch.stamp_volunteer_change();

-- Whether a volunteer is busy is derived from their active assignment: an assignment that becomes
-- active or stops being so stamps the volunteer's row too, so other instances hear of it.
CREATE FUNCTION dispatch.stamp_assignee_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR (OLD.status IN ('accepted', 'en_route', 'on_scene'))
          IS DISTINCT FROM (NEW.status IN ('accepted', 'en_route', 'on_scene')) THEN
        UPDATE dispatch.volunteers SET change_xid = pg_current_xact_id()
        WHERE user_id = NEW.volunteer_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER assignments_stamp_assignee
    AFTER INSERT OR UPDATE OF status ON dispatch.assignments
    FOR EACH ROW EXECUTE FUNCTION dispatch.stamp_assignee_change();
