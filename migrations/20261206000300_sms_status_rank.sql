-- Twilio's message statuses in the order a message goes through them, so a status callback that
-- arrives late never moves a message back (sms.messages.status; see SmsService::record_status).
-- Final statuses share the top rank; a status Twilio adds later ranks lowest and so never
-- replaces a known one.
CREATE FUNCTION sms.status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'accepted' THEN 1
        WHEN 'scheduled' THEN 1
        WHEN 'queued' THEN 2
        WHEN 'sending' THEN 3
        WHEN 'sent' THEN 4
        WHEN 'delivered' THEN 5
        WHEN 'undelivered' THEN 5
        WHEN 'failed' THEN 5
        WHEN 'read' THEN 5
        WHEN 'canceled' THEN 5
        WHEN 'partially_delivered' THEN 5
        ELSE 0
    END
$$;
