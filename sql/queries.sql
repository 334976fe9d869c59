-- Named queries for the vidpipe catalog, loaded by vidpipe.catalog.load_queries.
-- Each block starts with "-- name: <query_name>" and runs unchanged on SQLite and PostgreSQL
-- through SQLAlchemy text() with :named parameters.
--
-- Re-running a pipeline run must leave the catalog as it was, so every write is an
-- INSERT ... ON CONFLICT: runs only move their status, model versions and decisions
-- (blessings, pushes) keep the first row, and evaluations take the latest measurement until
-- the version has a decision (vidpipe.catalog refuses to change a decided version's evaluations).

-- name: upsert_run
INSERT INTO pipeline_runs (run_id, dag_id, started_at, params, status)
VALUES (:run_id, :dag_id, :started_at, :params, :status)
ON CONFLICT (run_id) DO UPDATE SET status = excluded.status;

-- name: select_run
SELECT run_id, dag_id, started_at, params, status
FROM pipeline_runs
WHERE run_id = :run_id;

-- name: insert_model_version
INSERT INTO model_versions (run_id, model_name, model_dir, config, created_at)
VALUES (:run_id, :model_name, :model_dir, :config, :created_at)
ON CONFLICT (run_id, model_name) DO NOTHING;

-- name: select_model_version_id
SELECT id
FROM model_versions
WHERE run_id = :run_id AND model_name = :model_name;

-- name: select_model_version
SELECT mv.id, mv.run_id, mv.model_name, mv.model_dir, e.gap
FROM model_versions mv
LEFT JOIN evaluations e ON e.model_version_id = mv.id AND e.split = :split
WHERE mv.id = :version_id;

-- name: select_model_versions_of_run
SELECT mv.id, mv.run_id, mv.model_name, mv.model_dir, e.gap
FROM model_versions mv
LEFT JOIN evaluations e ON e.model_version_id = mv.id AND e.split = :split
WHERE mv.run_id = :run_id
ORDER BY mv.id;

-- name: upsert_evaluation
INSERT INTO evaluations (model_version_id, split, gap, hit_at_one, perr, map, num_videos, metrics)
VALUES (:version_id, :split, :gap, :hit_at_one, :perr, :map, :num_videos, :metrics)
ON CONFLICT (model_version_id, split) DO UPDATE SET
    gap = excluded.gap,
    hit_at_one = excluded.hit_at_one,
    perr = excluded.perr,
    map = excluded.map,
    num_videos = excluded.num_videos,
    metrics = excluded.metrics;

-- name: select_evaluation
SELECT model_version_id, split, gap, hit_at_one, perr, map, num_videos, metrics
FROM evaluations
WHERE model_version_id = :version_id AND split = :split;

-- name: insert_blessing
INSERT INTO blessings (model_version_id, blessed, reason, candidate_gap, champion_version_id,
                       champion_gap, threshold, tolerance, decided_at)
VALUES (:version_id, :blessed, :reason, :candidate_gap, :champion_version_id,
        :champion_gap, :threshold, :tolerance, :decided_at)
ON CONFLICT (model_version_id) DO NOTHING;

-- name: select_blessing
SELECT model_version_id, blessed, reason, candidate_gap, champion_version_id, champion_gap,
       threshold, tolerance, decided_at
FROM blessings
WHERE model_version_id = :version_id;

-- name: insert_champion
INSERT INTO champions (model_version_id, run_id, promoted_at)
VALUES (:version_id, :run_id, :promoted_at)
ON CONFLICT (run_id) DO NOTHING;

-- name: select_champion_of_run
SELECT mv.id, mv.run_id, mv.model_name, mv.model_dir, e.gap
FROM champions c
JOIN model_versions mv ON mv.id = c.model_version_id
LEFT JOIN evaluations e ON e.model_version_id = mv.id AND e.split = :split
WHERE c.run_id = :run_id;

-- name: select_champion
SELECT mv.id, mv.run_id, mv.model_name, mv.model_dir, e.gap
FROM champions c
JOIN model_versions mv ON mv.id = c.model_version_id
LEFT JOIN evaluations e ON e.model_version_id = mv.id AND e.split = :split
ORDER BY c.id DESC
LIMIT 1;

-- name: select_history
SELECT mv.id, mv.run_id, r.dag_id, r.status, mv.model_name, mv.model_dir, mv.created_at,
       e.gap, b.blessed, b.reason,
       (SELECT MIN(c.promoted_at) FROM champions c WHERE c.model_version_id = mv.id) AS promoted_at
FROM model_versions mv
JOIN pipeline_runs r ON r.run_id = mv.run_id
LEFT JOIN evaluations e ON e.model_version_id = mv.id AND e.split = :split
LEFT JOIN blessings b ON b.model_version_id = mv.id
ORDER BY mv.id DESC
LIMIT :limit;
