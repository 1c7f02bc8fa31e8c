-- hdlm's database schema: the only DDL in the project. It is embedded into the binary at build
-- time and applied by core/store/store.c. Each "-- migration: N" line starts section N; PRAGMA
-- user_version holds the last section applied to a database. Sections are append-only: once a
-- section has shipped, change the schema by adding a new section, never by editing an old one.
--
-- Conventions: STRICT tables; timestamps are TEXT, ISO-8601 UTC with milliseconds
-- (2024-05-01T12:34:56.789Z); JSON columns (config, options, settings, sampler, schedule, noise,
-- tokens, metrics) are checked with json_valid; deleting a run deletes everything it owns.

-- migration: 1

-- One row per invocation that produces results: a training run, a data preparation, a Lua script,
-- a sampling or evaluation job. status moves from 'running' to one of the final states; a run
-- left 'running' by a process that died is marked 'interrupted' by the next hdlm that looks.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    name         TEXT,
    kind         TEXT NOT NULL,                 -- 'train', 'prepare', 'script', 'sample', 'eval', ...
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    error        TEXT,                          -- one-line reason when failed/interrupted
    config       TEXT CHECK (config IS NULL OR json_valid(config)), -- full resolved config (JSON)
    seed         INTEGER,
    git_rev      TEXT,
    git_dirty    INTEGER,                       -- 1 if the work tree had uncommitted changes
    host         TEXT,
    cpu          TEXT,
    blas         TEXT,                          -- BLAS library and its configuration
    threads      INTEGER,
    world_size   INTEGER NOT NULL DEFAULT 1,    -- number of cooperating processes
    script       TEXT,                          -- script path or command line
    hdlm_version TEXT,
    pid          INTEGER,                       -- process that owns the run while 'running'
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ended_at     TEXT
) STRICT;

-- The plugins a run used (noise processes, schedules, samplers), with enough to tell whether a
-- result can be reproduced: version, ABI, the .so file and its content hash, and the options.
CREATE TABLE run_plugins (
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,                      -- 'noise', 'schedule', 'sampler', ...
    name    TEXT NOT NULL,
    version TEXT,
    abi     INTEGER,
    file    TEXT,                               -- path of the shared object
    hash    TEXT,                               -- content hash of the shared object
    options TEXT CHECK (options IS NULL OR json_valid(options)), -- JSON object
    PRIMARY KEY (run_id, kind, name)
) STRICT;

-- Scalar time series: one value per (run, metric name, step). A later write of the same key
-- replaces the earlier one. value is NULL when the logged number was NaN. The primary key
-- (run_id first) is also the index for "all metrics of a run".
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step   INTEGER NOT NULL,
    name   TEXT NOT NULL,                       -- 'train/loss', 'lr', 'val/nll', ...
    value  REAL,
    at     TEXT NOT NULL,                       -- when the value was logged
    PRIMARY KEY (run_id, name, step)
) STRICT, WITHOUT ROWID;

-- Model checkpoints written by a run: where the file is, at which step, and its content hash.
CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    path       TEXT NOT NULL,
    hash       TEXT,
    bytes      INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE INDEX checkpoints_by_run ON checkpoints (run_id, step);

-- migration: 2

-- Evaluation results: one metric value with its standard error (e.g. a Monte-Carlo estimate of
-- the negative log-likelihood bound), for a checkpoint when there is one, with the settings used.
CREATE TABLE evaluations (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    checkpoint_id INTEGER REFERENCES checkpoints (id) ON DELETE SET NULL,
    metric        TEXT NOT NULL,                -- 'nll_bound', 'bits_per_token', 'gen_ppl', ...
    value         REAL,
    std_error     REAL,
    settings      TEXT CHECK (settings IS NULL OR json_valid(settings)), -- JSON
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE INDEX evaluations_by_run ON evaluations (run_id, metric);
CREATE INDEX evaluations_by_checkpoint ON evaluations (checkpoint_id);

-- Generated samples: the text and its token ids, the sampler/schedule/noise that produced it
-- (JSON: {"name":..,"version":..,"options":{..}}), the cost (steps, network evaluations, wall
-- time in seconds) and per-sample metrics.
CREATE TABLE samples (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    checkpoint_id INTEGER REFERENCES checkpoints (id) ON DELETE SET NULL,
    text          TEXT,
    tokens        TEXT CHECK (tokens IS NULL OR json_valid(tokens)), -- JSON array of token ids
    n_tokens      INTEGER,
    sampler       TEXT CHECK (sampler IS NULL OR json_valid(sampler)),
    schedule      TEXT CHECK (schedule IS NULL OR json_valid(schedule)),
    noise         TEXT CHECK (noise IS NULL OR json_valid(noise)),
    settings      TEXT CHECK (settings IS NULL OR json_valid(settings)),
    seed          INTEGER,
    steps         INTEGER,
    nfe           INTEGER,                      -- number of network function evaluations
    wall_time     REAL,                         -- seconds
    metrics       TEXT CHECK (metrics IS NULL OR json_valid(metrics)), -- JSON object
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE INDEX samples_by_run ON samples (run_id);
CREATE INDEX samples_by_checkpoint ON samples (checkpoint_id);

-- What the sampler did, change by change: at sampling step `step`, the token at `position` went
-- from old_token to new_token with probability prob. seq orders the events of one sample; the
-- primary key (sample_id first) is also the index for "all events of a sample".
CREATE TABLE sample_events (
    sample_id INTEGER NOT NULL REFERENCES samples (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,                 -- 0, 1, 2, ... within the sample
    step      INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    old_token INTEGER,
    new_token INTEGER,
    prob      REAL,
    kind      TEXT NOT NULL CHECK (kind IN ('unmask', 'correct', 'remask')),
    PRIMARY KEY (sample_id, seq)
) STRICT, WITHOUT ROWID;

-- migration: 3

-- Sweeps (`hdlm sweep FILE`): a named set of training configurations ("points") run by worker
-- processes that share this database. spec is the sweep file's description as JSON (functions
-- recorded as "<function>"); a sweep started again with a different spec under the same name is
-- refused. status: 'open' while points are unfinished, then 'done' (all done) or 'failed'.
CREATE TABLE sweeps (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    spec       TEXT NOT NULL CHECK (json_valid(spec)),
    file       TEXT,                            -- the sweep file as given on the command line
    status     TEXT NOT NULL CHECK (status IN ('open', 'done', 'failed')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT
) STRICT;

-- One row per point of a sweep. key is the point's parameters in a stable text form
-- ("lr=0.003,seed=1"), also the run config's "sweep_key"; config the full db:train options (JSON).
-- A worker claims a pending point with one UPDATE ... WHERE status = 'pending' in a write
-- transaction, recording its host, pid and the pid's start time (so a reused pid is not taken for
-- the worker); a point whose worker is gone goes back to 'pending' and resumes from
-- checkpoint_dir. run_id: the run that finished (or failed) the point; loss its last training
-- loss; result the eval / `after` results (JSON).
CREATE TABLE sweep_points (
    sweep_id       INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,            -- 0, 1, ... in the order of the sweep file
    key            TEXT NOT NULL,
    config         TEXT NOT NULL CHECK (json_valid(config)),
    checkpoint_dir TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    worker         INTEGER,                     -- worker number within its coordinator
    host           TEXT,
    pid            INTEGER,
    pid_start      INTEGER,                     -- start time of pid (clock ticks since boot)
    attempts       INTEGER NOT NULL DEFAULT 0,  -- claims so far
    claimed_at     TEXT,
    ended_at       TEXT,
    run_id         INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    loss           REAL,
    result         TEXT CHECK (result IS NULL OR json_valid(result)),
    error          TEXT,                        -- why it failed, or why it went back to pending
    PRIMARY KEY (sweep_id, idx),
    UNIQUE (sweep_id, key)
) STRICT;

CREATE INDEX sweep_points_by_status ON sweep_points (status, sweep_id);
