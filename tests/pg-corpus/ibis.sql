-- [statement pid=0]
SELECT CURRENT_DATABASE();

-- [statement pid=0]
SELECT CURRENT_SCHEMA;

-- [statement pid=0]
SELECT DISTINCT table_name FROM information_schema.tables WHERE TRUE AND table_schema = 'public' AND table_catalog = 'leadline' UNION ALL SELECT DISTINCT table_name FROM information_schema.tables WHERE table_type = 'LOCAL TEMPORARY';

-- [statement pid=0]
SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema();

-- [statement pid=0]
SELECT
  a.attname AS column_name,
  CASE
    WHEN EXISTS(
      SELECT 1
      FROM pg_catalog.pg_type t
      INNER JOIN pg_catalog.pg_enum e
              ON e.enumtypid = t.oid
             AND t.typname = pg_catalog.format_type(a.atttypid, a.atttypmod)
    ) THEN 'enum'
    ELSE pg_catalog.format_type(a.atttypid, a.atttypmod)
  END AS data_type,
  NOT a.attnotnull AS nullable
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c
   ON a.attrelid = c.oid
INNER JOIN pg_catalog.pg_namespace n
   ON c.relnamespace = n.oid
WHERE a.attnum > 0
  AND NOT a.attisdropped
  AND n.nspname = ANY(CAST('{public}' AS TEXT[]))
  AND c.relname = 'climate'
ORDER BY a.attnum ASC;

-- [statement pid=0]
SELECT
  a.attname AS column_name,
  CASE
    WHEN EXISTS(
      SELECT 1
      FROM pg_catalog.pg_type t
      INNER JOIN pg_catalog.pg_enum e
              ON e.enumtypid = t.oid
             AND t.typname = pg_catalog.format_type(a.atttypid, a.atttypmod)
    ) THEN 'enum'
    ELSE pg_catalog.format_type(a.atttypid, a.atttypmod)
  END AS data_type,
  NOT a.attnotnull AS nullable
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c
   ON a.attrelid = c.oid
INNER JOIN pg_catalog.pg_namespace n
   ON c.relnamespace = n.oid
WHERE a.attnum > 0
  AND NOT a.attisdropped
  AND n.nspname = ANY(CAST('{public}' AS TEXT[]))
  AND c.relname = 'ibis_postgres_metadata_x'
ORDER BY a.attnum ASC;

