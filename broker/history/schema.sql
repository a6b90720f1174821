-- dagbroker SQLite schema. Applied idempotently at startup (CREATE … IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS users (
    id          TEXT PRIMARY KEY,            -- short name: [a-z0-9][a-z0-9_.-]{0,63}
    admin       INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,            -- ms since the epoch
    created_by  TEXT,
    disabled    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS tokens (
    id            TEXT PRIMARY KEY,          -- public part of the token (dgb_<id>_<secret>)
    user_id       TEXT NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,             -- hex sha256 of the secret; the secret is never stored
    scopes        TEXT NOT NULL,             -- JSON list: user, admin, runner, events:<key>
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,                   -- ms; NULL = never
    revoked_at    INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(user_id);

CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       INTEGER NOT NULL,               -- ms
    actor    TEXT NOT NULL,                  -- user id, or "-" for an unauthenticated request
    action   TEXT NOT NULL,                  -- e.g. "POST /api/v1/workflow/execute"
    target   TEXT,                           -- run id, workflow name, user id … when known
    status   INTEGER,                        -- HTTP status of the request
    remote   TEXT,                           -- client address
    details  TEXT                            -- JSON
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
CREATE INDEX IF NOT EXISTS audit_target ON audit(target);
-- Transitions copied from the events stream carry the event id in `remote` ("event:<id>"):
-- unique, so replaying events never duplicates a record.
CREATE UNIQUE INDEX IF NOT EXISTS audit_event ON audit(remote) WHERE remote LIKE 'event:%';

-- Run history, fed from the events stream by broker/history/archive.py.
CREATE TABLE IF NOT EXISTS runs (
    id           TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    revision     TEXT,
    owner        TEXT NOT NULL,
    state        TEXT NOT NULL,
    priority     INTEGER,
    params       TEXT,                       -- JSON
    created_at   INTEGER,
    started_at   INTEGER,
    finished_at  INTEGER,
    total        INTEGER,
    counts       TEXT,                       -- JSON: state → tasks
    reason       TEXT,
    archived_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_owner_created ON runs(owner, created_at);
CREATE INDEX IF NOT EXISTS runs_workflow_created ON runs(workflow, created_at);
CREATE INDEX IF NOT EXISTS runs_state ON runs(state);

CREATE TABLE IF NOT EXISTS attempts (
    run          TEXT NOT NULL,
    task         TEXT NOT NULL,              -- task id (node, or node[i] for matrix copies)
    node         TEXT NOT NULL,              -- the workflow node it came from
    workflow     TEXT,
    signature    TEXT,                       -- hash of executor + command: same work elsewhere
    attempt      INTEGER NOT NULL,
    state        TEXT,                       -- running, succeeded, failed, retry_wait, lost, cancelled…
    runner       TEXT,
    started_at   INTEGER,
    finished_at  INTEGER,
    duration_ms  INTEGER,
    exit_code    INTEGER,
    reason       TEXT,
    PRIMARY KEY (run, task, attempt)
);
CREATE INDEX IF NOT EXISTS attempts_node ON attempts(workflow, node, state);
CREATE INDEX IF NOT EXISTS attempts_signature ON attempts(signature, state);

-- Timers (docs/events-and-timers.md): one row per timer, fired by the leader broker.
-- A fire is claimed by one conditional UPDATE (… WHERE next_fire_at = <the due time>), so of
-- several brokers sharing this file exactly one fires each due time.
CREATE TABLE IF NOT EXISTS timers (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,                -- user id; the action runs as this user
    name          TEXT NOT NULL DEFAULT '',
    action        TEXT NOT NULL,                -- JSON: {"execute": {name, params}} | {"push": {key, payload}}
    kind          TEXT NOT NULL,                -- after | at | cron
    cron          TEXT,                         -- 5-field cron expression (UTC), kind cron only
    state         TEXT NOT NULL,                -- active | done | cancelled
    next_fire_at  INTEGER,                      -- ms; NULL once done or cancelled
    created_at    INTEGER NOT NULL,
    fired         INTEGER NOT NULL DEFAULT 0,   -- fires so far
    last_fired_at INTEGER,                      -- due time (ms) of the last fire
    last_run      TEXT,                         -- run started (execute) or push id (push)
    last_error    TEXT,
    firing_at     INTEGER,                      -- due time of a fire claimed but not yet done
    firing_ref    TEXT,                         -- its run id / push id, fixed at the claim
    firing_since  INTEGER                       -- ms when it was claimed
);
CREATE INDEX IF NOT EXISTS timers_due ON timers(state, next_fire_at);
CREATE INDEX IF NOT EXISTS timers_owner ON timers(owner);
