-- The retry budget counts processing attempts above `attempts_base`: the attempts a video had
-- when it last left `failed` (a dead-letter redrive), so a redriven video gets a fresh budget.
ALTER TABLE videos ADD COLUMN attempts_base integer NOT NULL DEFAULT 0;
-- The sweep looks for `processing` rows whose attempt stopped beating.
CREATE INDEX videos_processing ON videos (updated_at) WHERE status = 'processing';
