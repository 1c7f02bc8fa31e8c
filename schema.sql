-- hdlm's database schema: the only DDL in the project. It is embedded into the binary at build
-- time and applied by core/store/store.c. Each "-- migration: N" line starts section N; PRAGMA
-- user_version holds the last section applied to a database. Sections are append-only: once a
-- section has shipped, change the schema by adding a new section, never by editing an old one.
--
-- Conventions: STRICT tables; timestamps are TEXT, ISO-8601 UTC with milliseconds
-- (2024-05-01T12:34:56.789Z); JSON columns (config, options, settings, sampler, schedule, noise,
-- tokens, metrics) are checked with json_valid; deleting a run deletes everything it owns (hdlm
-- turns foreign keys on; the sqlite3 shell needs `PRAGMA foreign_keys = ON` for the cascades).

-- migration: 1

-- One row per invocation that produces results: a training run, a data preparation, a Lua script,
-- a sampling or evaluation job. status moves from 'running' to one of the final states; a run
-- left 'running' by a process that died is marked 'interrupted' by the next hdlm that looks.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    name         TEXT,
    kind         TEXT NOT NULL,                 -- 'train' (db:train), 'script' (db:run's default) or
                                                -- what a script passes to db:run{kind = ...}
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    error        TEXT,                          -- one-line reason when failed/interrupted
    config       TEXT CHECK (config IS NULL OR json_valid(config)), -- JSON: db:train's resolved
                                                -- options (defaults included; migration 4 on),
                                                -- db:run's config as given
    seed         INTEGER,
    git_rev      TEXT,
    git_dirty    INTEGER,                       -- 1 if the work tree had uncommitted changes
    host         TEXT,
    cpu          TEXT,
    blas         TEXT,                          -- BLAS library and its configuration
    threads      INTEGER,
    world_size   INTEGER NOT NULL DEFAULT 1,    -- number of cooperating processes
    script       TEXT,                          -- script path (absolute from migration 4 on) or
                                                -- the command ('=hdlm sweep')
    hdlm_version TEXT,
    pid          INTEGER,                       -- process that owns the run while 'running'
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ended_at     TEXT
) STRICT;

-- The plugins a training run used (noise process, schedule), with enough to tell whether a result
-- can be reproduced: version, ABI, the .so file and its content hash, and the options.
CREATE TABLE run_plugins (
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,                      -- 'noise', 'schedule' (what db:train used;
                                                -- samplers are recorded with each sample)
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
    name   TEXT NOT NULL,                       -- db:train logs 'loss', 'lr', 'grad_norm',
                                                -- 'tokens_per_s', 'step_time', 'valid_loss',
                                                -- 'allreduce_time' (several processes), 'params'
                                                -- (step 0) and 'resume' (migration 4: at the step
                                                -- a continued run resumed from); scripts log any
    value  REAL,
    at     TEXT NOT NULL,                       -- when the value was logged
    PRIMARY KEY (run_id, name, step)
) STRICT, WITHOUT ROWID;

-- Model checkpoints written by a run: where the weights file is (absolute path from migration 4 on;
-- its EMA and optimizer state lie beside it as step_N.ema/.state.safetensors), at which step, its
-- SHA-256 and size in bytes (empty and 0 before migration 4).
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
    metric        TEXT NOT NULL,                -- run:eval: 'nll_bound' (nats per token);
                                                -- run:gen_eval: 'gen_nll', 'gen_ppl',
                                                -- 'gen_ppl_mean', 'entropy', 'distinct_1'..'_4',
                                                -- 'rep_2'..'_4'
    value         REAL,
    std_error     REAL,
    settings      TEXT CHECK (settings IS NULL OR json_valid(settings)), -- JSON
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE INDEX evaluations_by_run ON evaluations (run_id, metric);
CREATE INDEX evaluations_by_checkpoint ON evaluations (checkpoint_id);

-- Generated samples: the text and its token ids, the sampler/schedule/noise that produced it
-- (JSON: {"name":..,"version":..,"options":{..},"sha256":..} — sha256 of the plugin's .so from
-- migration 4 on), the cost (steps, network evaluations, wall time in seconds) and per-sample
-- metrics (run:gen_eval: gen_nll, gen_ppl, entropy, judge_run).
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

-- migration: 4

-- The experiment scripts runs were started from, once per distinct content: a run records the
-- text it executed even after the file changed or moved (runs.script_sha256).
CREATE TABLE scripts (
    sha256     TEXT PRIMARY KEY,                -- SHA-256 of the file's bytes, hex
    text       TEXT NOT NULL,                   -- the file as it was run
    bytes      INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- A training run resumed from a checkpoint continues the row of the run that wrote it when that
-- run was interrupted or failed (or stopped early) with the same name, resolved config, git
-- revision and hdlm version; `resumes` counts those continuations. Otherwise the new row names
-- the run it resumed from in `resumed_from`.
ALTER TABLE runs ADD COLUMN script_sha256 TEXT REFERENCES scripts (sha256);
ALTER TABLE runs ADD COLUMN resumed_from INTEGER REFERENCES runs (id) ON DELETE SET NULL;
ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;

-- Per-sequence values of an evaluation, for paired comparisons (`hdlm compare`): item is the
-- 0-based index of the sequence in the evaluation set, value that sequence's bound in nats per
-- token (its total over the evaluation's tokens per sequence: the length, or length - 1 for the
-- reference estimator), so that the mean of the items is evaluations.value. Two evaluations with
-- the same settings.sequences_sha256 scored the same sequences in the same order. run:gen_eval
-- stores its per-sample NLL (nats per token) under its gen_nll row the same way.
CREATE TABLE evaluation_items (
    evaluation_id INTEGER NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    item          INTEGER NOT NULL,
    value         REAL NOT NULL,
    PRIMARY KEY (evaluation_id, item)
) STRICT;

-- Views for the common questions (sqlite3, pandas.read_sql). Read-only; the tables stay the
-- source of truth.

-- The newest 'nll_bound' evaluation of each run, in nats and bits per token, with its settings.
CREATE VIEW v_latest_bound AS
SELECT e.run_id, r.name AS run_name, e.id AS evaluation_id, c.step AS checkpoint_step,
       e.value AS nats, e.std_error AS se, e.value / 0.6931471805599453 AS bits,
       e.std_error / 0.6931471805599453 AS bits_se,
       json_extract(e.settings, '$.estimator') AS estimator,
       json_extract(e.settings, '$.schedule.name') AS schedule,
       json_extract(e.settings, '$.noise.name') AS noise,
       json_extract(e.settings, '$.split') AS split,
       json_extract(e.settings, '$.sequences') AS sequences,
       json_extract(e.settings, '$.length') AS length,
       json_extract(e.settings, '$.mc') AS mc,
       (SELECT count(*) FROM evaluation_items i WHERE i.evaluation_id = e.id) AS n_items,
       e.created_at
FROM evaluations e
JOIN runs r ON r.id = e.run_id
LEFT JOIN checkpoints c ON c.id = e.checkpoint_id
WHERE e.metric = 'nll_bound'
  AND e.id = (SELECT max(e2.id) FROM evaluations e2
              WHERE e2.run_id = e.run_id AND e2.metric = 'nll_bound');

-- Training curves: one row per (run, step) with the metrics db:train logs side by side (NULL
-- where a metric was not logged at that step, e.g. valid_loss between evaluations).
CREATE VIEW v_loss_curve AS
SELECT m.run_id, r.name AS run_name, m.step,
       max(CASE WHEN m.name = 'loss' THEN m.value END) AS loss,
       max(CASE WHEN m.name = 'valid_loss' THEN m.value END) AS valid_loss,
       max(CASE WHEN m.name = 'lr' THEN m.value END) AS lr,
       max(CASE WHEN m.name = 'grad_norm' THEN m.value END) AS grad_norm,
       max(CASE WHEN m.name = 'tokens_per_s' THEN m.value END) AS tokens_per_s
FROM metrics m
JOIN runs r ON r.id = m.run_id
WHERE m.name IN ('loss', 'valid_loss', 'lr', 'grad_norm', 'tokens_per_s')
GROUP BY m.run_id, m.step;

-- Samples with the settings that produced them unpacked, their cost and judge metrics.
CREATE VIEW v_samples AS
SELECT s.id AS sample_id, s.run_id, r.name AS run_name, c.step AS checkpoint_step,
       json_extract(s.sampler, '$.name') AS sampler,
       json_extract(s.sampler, '$.options') AS sampler_options,
       json_extract(s.schedule, '$.name') AS schedule,
       json_extract(s.noise, '$.name') AS noise,
       json_extract(s.settings, '$.temperature') AS temperature,
       json_extract(s.settings, '$.top_k') AS top_k,
       json_extract(s.settings, '$.top_p') AS top_p,
       s.seed, s.steps, s.nfe, s.wall_time, s.n_tokens,
       (SELECT count(*) FROM sample_events v
        WHERE v.sample_id = s.id AND v.kind = 'correct') AS corrections,
       json_extract(s.metrics, '$.gen_nll') AS gen_nll,
       json_extract(s.metrics, '$.entropy') AS entropy,
       s.text, s.created_at
FROM samples s
JOIN runs r ON r.id = s.run_id
LEFT JOIN checkpoints c ON c.id = s.checkpoint_id;
