-- Drills: alerts raised to practise (`kreki simulate`, exercises), flagged at creation and never
-- changed. Dispatch handles them like any alert; what they mean downstream (no SATUSEHAT Encounter,
-- not served to health systems, apart in the dashboard's figures) follows from this one column.
ALTER TABLE dispatch.alerts ADD COLUMN drill boolean NOT NULL DEFAULT false;
