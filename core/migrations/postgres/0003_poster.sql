-- A poster image per video (the pipeline's `poster` side output), stored beside the processed
-- output; NULL for videos processed before posters existed or by a pipeline without the stage.
ALTER TABLE videos ADD COLUMN poster_key TEXT;
