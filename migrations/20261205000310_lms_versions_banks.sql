-- Course versions and question banks.
-- A course is a version of a series: publishing a change makes a new course row (version n+1) in
-- the same series, so whoever enrolled in an earlier version keeps it, unchanged, to the end. The
-- catalogue lists the newest version of each series.
ALTER TABLE lms.courses ADD COLUMN series_id uuid;
ALTER TABLE lms.courses ADD COLUMN version integer NOT NULL DEFAULT 1;
UPDATE lms.courses SET series_id = id WHERE series_id IS NULL;
ALTER TABLE lms.courses ALTER COLUMN series_id SET NOT NULL;
ALTER TABLE lms.courses ADD CONSTRAINT courses_series_version_key UNIQUE (series_id, version);
ALTER TABLE lms.courses ADD CONSTRAINT courses_version CHECK (version >= 1);

-- A quiz whose questions are a bank: each attempt draws `draw_count` of them at random (all of
-- them when null).
ALTER TABLE lms.quizzes ADD COLUMN draw_count integer;
ALTER TABLE lms.quizzes ADD CONSTRAINT quizzes_draw_count CHECK (draw_count IS NULL OR draw_count BETWEEN 1 AND 100);

-- Shown with the score once an attempt is submitted (immediate feedback).
ALTER TABLE lms.questions ADD COLUMN explanation text;
