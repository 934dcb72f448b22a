-- Players, their videos, the public's votes, and the embedded job queue (SQLite; uuids are 16-byte blobs, times RFC 3339 text in UTC).
CREATE TABLE users (
    id            blob PRIMARY KEY,
    email         text NOT NULL CHECK (email <> ''),
    password_hash text NOT NULL,
    first_name    text NOT NULL,
    last_name     text NOT NULL,
    city          text NOT NULL,
    country       text NOT NULL,
    created_at    text NOT NULL
);
-- One account per address, whatever its case.
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));
-- Rankings filter by city.
CREATE INDEX users_city ON users (lower(city));

CREATE TABLE videos (
    id              blob PRIMARY KEY,
    user_id         blob NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           text NOT NULL,
    description     text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    original_key    text NOT NULL,
    original_size   integer CHECK (original_size >= 0),
    processed_key   text,
    error_code      text,
    error_message   text,
    error_retryable integer NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    progress        real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    uploaded_at     text NOT NULL,
    processed_at    text,
    enqueued_at     text,
    updated_at      text NOT NULL,
    CHECK (status <> 'completed' OR processed_key IS NOT NULL)
);
-- "My videos", newest first.
CREATE INDEX videos_by_user ON videos (user_id, uploaded_at DESC);
-- The public listing sees completed videos only, newest first.
CREATE INDEX videos_public ON videos (uploaded_at DESC, id) WHERE status = 'completed';
-- The sweep looks for uploads that were never enqueued.
CREATE INDEX videos_unqueued ON videos (uploaded_at) WHERE status = 'pending' AND enqueued_at IS NULL;

CREATE TABLE votes (
    video_id   blob NOT NULL REFERENCES videos (id) ON DELETE RESTRICT,
    user_id    blob NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at text NOT NULL,
    PRIMARY KEY (video_id, user_id)
);
CREATE INDEX votes_by_user ON votes (user_id);

-- The embedded job queue (ANB_QUEUE_URL=embedded): same semantics as SQS. Times are epoch
-- milliseconds so both backends compare them the same way.
CREATE TABLE queue_messages (
    id            blob PRIMARY KEY,
    queue         text NOT NULL,
    body          text NOT NULL,
    receive_count integer NOT NULL DEFAULT 0,
    visible_at    integer NOT NULL,
    sent_at       integer NOT NULL
);
CREATE INDEX queue_messages_next ON queue_messages (queue, visible_at);
