-- Phones are shown only through a recorded call-back view (POST /v1/alerts/{id}/contacts/view):
-- the `phoned_in` timeline entries written before keep only the last four digits of the caller's
-- number (the number itself stays on the alert row for the call-back).
UPDATE dispatch.alert_events
SET data = jsonb_set(data, '{caller_phone}',
                     to_jsonb('*******' || right(regexp_replace(data->>'caller_phone', '[^0-9]', '', 'g'), 4)))
WHERE type = 'phoned_in' AND jsonb_typeof(data->'caller_phone') = 'string';
