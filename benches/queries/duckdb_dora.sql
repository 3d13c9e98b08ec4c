-- DORA metrics of a leadline event log in plain DuckDB SQL (shared/SPEC.md §2-§4).
--
-- The "analyst with DuckDB" side of benches/queries/run.py: hand-written SQL
-- over the same Parquet files leadline writes (DIR/events/event_date=*/*.parquet).
-- run.py replaces @EVENTS@ by that glob and runs the statements up to the
-- first "-- name:" line once (they only define views and macros, so every
-- query below recomputes the projections from the Parquet files, as leadline's
-- queries do). Each "-- name: X" block after that is one query.
--
-- Reading the glob is right for a log that was only ever appended to; after
-- `leadline compact` the Delta log (not the glob) says which files are live.
--
-- Durations are returned as seconds (DOUBLE).
--
-- leadline.as_of and leadline.attribution_window are the variables `as_of`
-- (only events ingested then or before; NULL: every event) and
-- `attribution_window` (NULL: unbounded; default 24 hours): run.py's
-- time-travel variants SET them after this setup, every view reads them when
-- a query runs.

SET TimeZone = 'UTC';
SET enable_progress_bar = false;
SET VARIABLE as_of = NULL::TIMESTAMPTZ;
SET VARIABLE attribution_window = INTERVAL 24 HOUR;

CREATE OR REPLACE VIEW ev AS
SELECT event_id, event_type, occurred_at, service, environment, commit_sha,
       deployment_id, incident_id, change_ids, team
FROM read_parquet('@EVENTS@', hive_partitioning = true)
WHERE getvariable('as_of') IS NULL OR ingested_at <= getvariable('as_of');

-- Deployment (§2): terminal state = latest succeeded/failed (ties: failed
-- wins, then greatest event_id); fields of the terminal event, without one of
-- the earliest event; a missing commit_sha from the latest event carrying one.
CREATE OR REPLACE VIEW dl_deploy_agg AS
SELECT
    deployment_id,
    min(occurred_at) FILTER (WHERE event_type = 'deployment_started') AS started_at,
    arg_max({'type': event_type, 'at': occurred_at, 'service': service, 'environment': environment,
             'sha': commit_sha, 'change_ids': change_ids, 'team': team},
            {'at': occurred_at, 'failed': event_type = 'deployment_failed', 'id': event_id})
        FILTER (WHERE event_type IN ('deployment_succeeded', 'deployment_failed')) AS term,
    arg_min({'service': service, 'environment': environment, 'sha': commit_sha, 'team': team},
            {'at': occurred_at, 'id': event_id}) AS first_ev,
    arg_max(commit_sha, {'at': occurred_at, 'id': event_id}) FILTER (WHERE commit_sha IS NOT NULL) AS any_sha,
    arg_max(team, {'at': occurred_at, 'id': event_id}) FILTER (WHERE team IS NOT NULL) AS any_team,
    count(*) FILTER (WHERE event_type = 'deployment_rolled_back') > 0 AS rolled_back,
    min(occurred_at) FILTER (WHERE event_type = 'deployment_rolled_back') AS first_rollback_at,
    -- go-live times of each part, for inferred incident attribution
    list(occurred_at) FILTER (WHERE event_type = 'deployment_succeeded') AS succeeded_at,
    -- v2: the parts' change lists (their union ships) and head commits
    count(change_ids) FILTER (WHERE event_type = 'deployment_succeeded') > 0 AS parts_list,
    list_distinct(flatten(list(change_ids ORDER BY occurred_at, event_id)
        FILTER (WHERE event_type = 'deployment_succeeded' AND change_ids IS NOT NULL))) AS parts_change_ids,
    list(commit_sha) FILTER (WHERE event_type = 'deployment_succeeded' AND commit_sha IS NOT NULL) AS part_shas,
    -- v2 rework: the incident its earliest event naming one names
    arg_min(incident_id, {'at': occurred_at, 'id': event_id}) FILTER (WHERE incident_id IS NOT NULL) AS names_incident
FROM ev
WHERE event_type IN ('deployment_started', 'deployment_succeeded', 'deployment_failed', 'deployment_rolled_back')
  AND deployment_id IS NOT NULL
GROUP BY deployment_id;

CREATE OR REPLACE VIEW dl_deploy_base AS
SELECT
    deployment_id,
    CASE WHEN term IS NULL THEN first_ev.service ELSE term.service END AS service,
    CASE WHEN term IS NULL THEN first_ev.environment ELSE term.environment END AS environment,
    started_at,
    term.at AS finished_at,
    CASE term.type WHEN 'deployment_succeeded' THEN 'succeeded' WHEN 'deployment_failed' THEN 'failed'
         ELSE 'in_progress' END AS status,
    coalesce(CASE WHEN term IS NULL THEN first_ev.sha ELSE term.sha END, any_sha) AS commit_sha,
    CASE WHEN term.type = 'deployment_succeeded' AND parts_list THEN parts_change_ids ELSE term.change_ids END
        AS change_ids,
    part_shas,
    names_incident,
    rolled_back,
    first_rollback_at,
    coalesce(CASE WHEN term IS NULL THEN first_ev.team ELSE term.team END, any_team) AS team,
    succeeded_at
FROM dl_deploy_agg;

-- Commits: several events with one sha -> the earliest (ties: smallest event_id).
CREATE OR REPLACE VIEW dl_commits AS
SELECT commit_sha,
       arg_min(service, {'at': occurred_at, 'id': event_id}) AS service,
       min(occurred_at) AS committed_at
FROM ev
WHERE event_type = 'commit' AND commit_sha IS NOT NULL
GROUP BY commit_sha;

-- Incident (§2): opened = earliest open; resolved = latest resolve unless a
-- later open reopened it; never opened = orphan (left out); explicit cause =
-- deployment_id of its earliest event carrying one.
CREATE OR REPLACE VIEW dl_incident_base AS
SELECT * FROM (
    SELECT
        incident_id,
        arg_min({'service': service, 'environment': environment, 'team': team}, {'at': occurred_at, 'id': event_id})
            FILTER (WHERE event_type = 'incident_opened') AS first_open,
        min(occurred_at) FILTER (WHERE event_type = 'incident_opened') AS opened_at,
        max(occurred_at) FILTER (WHERE event_type = 'incident_opened') AS last_open,
        max(occurred_at) FILTER (WHERE event_type = 'incident_resolved') AS last_resolve,
        arg_min(deployment_id, {'at': occurred_at, 'id': event_id}) FILTER (WHERE deployment_id IS NOT NULL) AS explicit_dep
    FROM ev
    WHERE event_type IN ('incident_opened', 'incident_resolved') AND incident_id IS NOT NULL
    GROUP BY incident_id
) WHERE opened_at IS NOT NULL;

-- Go-live instants of successful deployments; at one instant the greatest
-- deployment_id wins, so the ASOF join below has a unique match.
CREATE OR REPLACE VIEW dl_live AS
SELECT service, environment, live_at, max(deployment_id) AS deployment_id
FROM (SELECT service, environment, deployment_id, unnest(succeeded_at) AS live_at
      FROM dl_deploy_base WHERE status = 'succeeded')
GROUP BY ALL;

-- A go-live at `live_at` (NULL: none) within the attribution window before `opened_at`.
CREATE OR REPLACE MACRO dl_in_window(live_at, opened_at) AS
    coalesce(live_at >= opened_at - getvariable('attribution_window'), live_at IS NOT NULL);

CREATE OR REPLACE VIEW incidents AS
SELECT
    i.incident_id,
    i.first_open.service AS service,
    i.first_open.environment AS environment,
    i.opened_at,
    CASE WHEN i.last_resolve >= i.last_open THEN i.last_resolve END AS resolved_at,
    (epoch_us(CASE WHEN i.last_resolve >= i.last_open THEN i.last_resolve END) - epoch_us(i.opened_at)) / 1e6 AS restore_time,
    CASE WHEN i.explicit_dep IS NOT NULL THEN i.explicit_dep
         WHEN dl_in_window(l.live_at, i.opened_at) THEN l.deployment_id END AS deployment_id,
    CASE WHEN i.explicit_dep IS NOT NULL THEN 'explicit'
         WHEN dl_in_window(l.live_at, i.opened_at) THEN 'inferred' END AS attribution,
    i.first_open.team AS team
FROM dl_incident_base i
ASOF LEFT JOIN dl_live l
  ON i.first_open.service = l.service AND i.first_open.environment = l.environment AND i.opened_at >= l.live_at;

-- Failed deployments (§2) and their recovery time; rework (§2 v2): a
-- deployment naming an incident, else the last successful deployment of a
-- resolved incident's service and environment that finished after it opened
-- and by its resolve (ties: greatest deployment_id), remediating the
-- earliest-opened such incident.
CREATE OR REPLACE VIEW deployments AS
WITH caused AS (
    SELECT deployment_id, bool_and(resolved_at IS NOT NULL) AS all_resolved, max(resolved_at) AS last_resolved
    FROM incidents WHERE deployment_id IS NOT NULL GROUP BY deployment_id
), finishes AS (
    SELECT service, environment, finished_at, max(deployment_id) AS deployment_id
    FROM dl_deploy_base WHERE status = 'succeeded' GROUP BY ALL
), fixes AS (
    SELECT f.deployment_id, arg_min(i.incident_id, {'at': i.opened_at, 'id': i.incident_id}) AS incident_id
    FROM (SELECT * FROM incidents WHERE resolved_at IS NOT NULL) i
    ASOF JOIN finishes f
      ON i.service = f.service AND i.environment = f.environment AND i.resolved_at >= f.finished_at
    WHERE f.finished_at > i.opened_at
    GROUP BY f.deployment_id
)
SELECT d.deployment_id, d.service, d.environment, d.started_at, d.finished_at, d.status, d.commit_sha,
       d.change_ids, d.rolled_back,
       CASE WHEN d.status = 'succeeded' THEN d.rolled_back OR c.deployment_id IS NOT NULL END AS failed,
       CASE WHEN d.status = 'succeeded' THEN
           (epoch_us(CASE WHEN c.deployment_id IS NOT NULL THEN CASE WHEN c.all_resolved THEN c.last_resolved END
                          WHEN d.rolled_back THEN d.first_rollback_at END) - epoch_us(d.finished_at)) / 1e6
       END AS recovery_time,
       CASE WHEN d.status = 'succeeded' THEN coalesce(d.names_incident, x.incident_id) IS NOT NULL END AS rework,
       CASE WHEN d.status = 'succeeded' THEN coalesce(d.names_incident, x.incident_id) END AS remediates,
       d.team
FROM dl_deploy_base d LEFT JOIN caused c USING (deployment_id) LEFT JOIN fixes x USING (deployment_id);

-- Changes (§2). Rule 1: explicit change_ids + commit_sha + each part's
-- commit_sha. Rules 2/3: every
-- commit of the service up to a cutoff (head commit's time, else finished_at)
-- not shipped to that environment before. In deployment order the first
-- deployment whose cutoff reaches a commit is the first whose running maximum
-- of cutoffs ("reach") does: an ASOF join of commits onto the reach steps.
-- A change's first shipment is the earliest candidate over all rules.
CREATE OR REPLACE VIEW changes AS
WITH succ AS (
    SELECT deployment_id, service, environment, finished_at, commit_sha, change_ids, part_shas, team
    FROM dl_deploy_base WHERE status = 'succeeded'  -- (failure marking is not needed here)
), cut AS (
    SELECT s.*, CASE WHEN s.change_ids IS NULL THEN coalesce(h.committed_at, s.finished_at) END AS cutoff
    FROM succ s LEFT JOIN dl_commits h ON h.commit_sha = s.commit_sha
), reach AS (
    SELECT *, max(cutoff) OVER (PARTITION BY service, environment ORDER BY finished_at, deployment_id
                                ROWS UNBOUNDED PRECEDING) AS reach
    FROM cut
), steps AS (
    SELECT service, environment, reach,
           arg_min(deployment_id, {'at': finished_at, 'id': deployment_id}) AS deployment_id,
           min(finished_at) AS finished_at
    FROM reach WHERE reach IS NOT NULL GROUP BY ALL
), commit_env AS (
    SELECT c.commit_sha, c.service, c.committed_at, e.environment
    FROM dl_commits c JOIN (SELECT DISTINCT service, environment FROM steps) e USING (service)
), by_cutoff AS (
    SELECT ce.commit_sha, ce.environment, s.deployment_id, s.finished_at
    FROM commit_env ce ASOF JOIN steps s
      ON ce.service = s.service AND ce.environment = s.environment AND ce.committed_at <= s.reach
), explicit AS (
    SELECT DISTINCT id AS commit_sha, environment, deployment_id, finished_at
    FROM (SELECT unnest(list_concat(change_ids, [commit_sha], part_shas)) AS id,
                 environment, deployment_id, finished_at
          FROM succ WHERE change_ids IS NOT NULL)
    WHERE id IS NOT NULL
), firsts AS (
    SELECT commit_sha, environment,
           arg_min(deployment_id, {'at': finished_at, 'id': deployment_id}) AS deployment_id,
           min(finished_at) AS deployed_at
    FROM (SELECT * FROM by_cutoff UNION ALL SELECT * FROM explicit)
    GROUP BY commit_sha, environment
)
SELECT f.commit_sha, d.service, f.environment, c.committed_at, f.deployment_id, f.deployed_at,
       (epoch_us(f.deployed_at) - epoch_us(c.committed_at)) / 1e6 AS lead_time,
       d.team
FROM firsts f
JOIN succ d ON d.deployment_id = f.deployment_id
LEFT JOIN dl_commits c ON c.commit_sha = f.commit_sha;

-- dora_metrics(grain) (§3, §4): every (service, environment) with deployment
-- or incident events x every bucket from `lo` to `hi` (default: the log's
-- span), zero-filled.
CREATE OR REPLACE MACRO dl_step(grain) AS
    CASE grain WHEN 'day' THEN INTERVAL 1 DAY WHEN 'week' THEN INTERVAL 7 DAY ELSE INTERVAL 1 MONTH END;

CREATE OR REPLACE MACRO dora_metrics(grain, lo := NULL, hi := NULL) AS TABLE
WITH span AS (
    SELECT min(occurred_at) AS first_at, max(occurred_at) AS last_at FROM ev
), buckets AS (
    SELECT unnest(generate_series(date_trunc(grain, coalesce(lo::TIMESTAMPTZ, first_at)),
                                  date_trunc(grain, coalesce(hi::TIMESTAMPTZ, last_at)), dl_step(grain))) AS bucket_start
    FROM span
), pairs AS (
    SELECT DISTINCT service, environment FROM ev
    WHERE event_type NOT IN ('commit') AND environment IS NOT NULL
), dep AS (
    SELECT service, environment, date_trunc(grain, finished_at) AS bucket_start,
           count(*) AS deployments,
           count(*) FILTER (WHERE failed) / count(*) AS cfr,
           count(*) FILTER (WHERE rework) / count(*) AS rework_rate,
           quantile_cont(recovery_time, 0.5) FILTER (WHERE failed) AS fdrt
    FROM deployments WHERE status = 'succeeded' GROUP BY 1, 2, 3
), chg AS (
    SELECT service, environment, date_trunc(grain, deployed_at) AS bucket_start,
           quantile_cont(lead_time, 0.5) AS p50, quantile_cont(lead_time, 0.9) AS p90
    FROM changes WHERE lead_time >= 0 GROUP BY 1, 2, 3
), inc AS (
    SELECT service, environment, date_trunc(grain, resolved_at) AS bucket_start,
           quantile_cont(restore_time, 0.5) AS ttr
    FROM incidents WHERE resolved_at IS NOT NULL GROUP BY 1, 2, 3
), m AS (
    SELECT p.service, p.environment, b.bucket_start,
           coalesce(dep.deployments, 0) AS deployments,
           coalesce(dep.deployments, 0)
             / ((epoch(b.bucket_start + dl_step(grain)) - epoch(b.bucket_start)) / 86400.0) AS deployment_frequency,
           chg.p50 AS lead_time_p50, chg.p90 AS lead_time_p90,
           dep.cfr AS change_failure_rate,
           dep.rework_rate,
           inc.ttr AS time_to_restore_p50,
           dep.fdrt AS failed_deployment_recovery_p50
    FROM pairs p CROSS JOIN buckets b
    LEFT JOIN dep USING (service, environment, bucket_start)
    LEFT JOIN chg USING (service, environment, bucket_start)
    LEFT JOIN inc USING (service, environment, bucket_start)
)
SELECT *,
    CASE WHEN lead_time_p50 IS NULL THEN NULL WHEN lead_time_p50 < 86400 THEN 'elite'
         WHEN lead_time_p50 < 7 * 86400 THEN 'high' WHEN lead_time_p50 < 30 * 86400 THEN 'medium' ELSE 'low' END
        AS lead_time_tier,
    CASE WHEN deployment_frequency >= 1 THEN 'elite' WHEN deployment_frequency >= 1 / 7 THEN 'high'
         WHEN deployment_frequency >= 1 / 30 THEN 'medium' ELSE 'low' END AS deployment_frequency_tier,
    CASE WHEN change_failure_rate IS NULL THEN NULL WHEN change_failure_rate <= 0.05 THEN 'elite'
         WHEN change_failure_rate <= 0.10 THEN 'high' WHEN change_failure_rate <= 0.15 THEN 'medium' ELSE 'low' END
        AS change_failure_rate_tier,
    CASE WHEN time_to_restore_p50 IS NULL THEN NULL WHEN time_to_restore_p50 < 3600 THEN 'elite'
         WHEN time_to_restore_p50 < 86400 THEN 'high' WHEN time_to_restore_p50 < 7 * 86400 THEN 'medium' ELSE 'low' END
        AS time_to_restore_tier
FROM m;

-- name: q1
SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start;

-- name: q2
-- Production weekly trend of one service over a window (@SERVICE@, @FROM@, @TO@).
SELECT bucket_start, deployments, lead_time_p50, lead_time_p90, change_failure_rate, time_to_restore_p50
FROM dora_metrics('week', lo := '@FROM@', hi := '@TO@')
WHERE service = '@SERVICE@' AND environment = 'production'
ORDER BY bucket_start;

-- name: q3
-- Ad hoc: production metrics per team and month, over the projections.
WITH d AS (
    SELECT team, date_trunc('month', finished_at) AS month, count(*) AS deployments,
           count(*) FILTER (WHERE failed) / count(*) AS cfr,
           quantile_cont(recovery_time, 0.5) FILTER (WHERE failed) AS fdrt
    FROM deployments WHERE status = 'succeeded' AND environment = 'production' GROUP BY 1, 2
), c AS (
    SELECT team, date_trunc('month', deployed_at) AS month,
           quantile_cont(lead_time, 0.5) AS lt_p50, quantile_cont(lead_time, 0.9) AS lt_p90
    FROM changes WHERE environment = 'production' AND lead_time >= 0 GROUP BY 1, 2
), i AS (
    SELECT team, date_trunc('month', resolved_at) AS month, quantile_cont(restore_time, 0.5) AS ttr
    FROM incidents WHERE environment = 'production' AND resolved_at IS NOT NULL GROUP BY 1, 2
)
SELECT d.team, d.month, d.deployments, d.cfr, d.fdrt, c.lt_p50, c.lt_p90, i.ttr
FROM d
LEFT JOIN c ON (c.team IS NOT DISTINCT FROM d.team) AND c.month = d.month
LEFT JOIN i ON (i.team IS NOT DISTINCT FROM d.team) AND i.month = d.month
ORDER BY d.team NULLS FIRST, d.month;
