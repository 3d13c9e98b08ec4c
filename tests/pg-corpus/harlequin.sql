-- [statement pid=0]
select datname
                from pg_database
                where
                    datistemplate is false
                    and datallowconn is true
                order by datname asc;

-- [statement pid=0]
select current_database(), current_schemas(false);

-- [statement pid=0]
select schema_name
                from information_schema.schemata
                where
                    catalog_name = 'leadline'
                    and schema_name != 'information_schema'
                    and schema_name not like 'pg\_%' escape '\'
                order by schema_name asc;

-- [statement pid=0]
select table_name, table_type
                from information_schema.tables
                where
                    table_catalog = 'leadline'
                    and table_schema = 'public'
                order by table_name asc;

-- [statement pid=0]
select matviewname
                from pg_matviews
                where
                    schemaname = 'public'
                order by matviewname asc;

-- [statement pid=0]
select column_name, data_type
                from information_schema.columns
                where
                    table_catalog = 'leadline'
                    and table_schema = 'public'
                    and table_name = 'climate'
                order by ordinal_position asc;

-- [statement pid=0]
select distinct
                routine_name as label,
                case when routine_type is null then 'agg' else 'fn' end as type_label,
                case
                    when routine_schema = 'pg_catalog'  --
                    then null
                    else routine_schema
                end as context
            from information_schema.routines
            where
                length(routine_name) < 37
                and routine_name not ilike '\_%'
                and routine_name not ilike 'pg\_%'
                and routine_name not ilike 'binary\_upgrade\_%';

-- [statement pid=0]
select distinct name as label from pg_settings;

-- [statement pid=0]
select d.datname::text, null::text, null::text, null::text, null::text, null::text
from pg_database d
where
    d.datistemplate is false
    and d.datallowconn is true
    and d.datname ilike '%deploy%' escape '\'
 union all 
select
    s.catalog_name::text, s.schema_name::text,
    null::text, null::text, null::text, null::text
from information_schema.schemata s
where
    s.catalog_name = current_database()
    and s.schema_name != 'information_schema' and s.schema_name not like 'pg\_%' escape '\'
    and s.schema_name ilike '%deploy%' escape '\'
 union all 
select
    t.table_catalog::text, t.table_schema::text, t.table_name::text,
    t.table_type::text, null::text, null::text
from information_schema.tables t
where
    t.table_catalog = current_database()
    and t.table_schema != 'information_schema' and t.table_schema not like 'pg\_%' escape '\'
    and t.table_name ilike '%deploy%' escape '\'
 union all 
select
    current_database()::text, m.schemaname::text, m.matviewname::text,
    'MATERIALIZED VIEW'::text, null::text, null::text
from pg_matviews m
where
    m.schemaname != 'information_schema' and m.schemaname not like 'pg\_%' escape '\'
    and m.matviewname ilike '%deploy%' escape '\'
 union all 
select
    c.table_catalog::text, c.table_schema::text, c.table_name::text,
    t.table_type::text, c.column_name::text, c.data_type::text
from information_schema.columns c
join information_schema.tables t
    on t.table_catalog = c.table_catalog
    and t.table_schema = c.table_schema
    and t.table_name = c.table_name
where
    c.table_catalog = current_database()
    and c.table_schema != 'information_schema' and c.table_schema not like 'pg\_%' escape '\'
    and c.column_name ilike '%deploy%' escape '\'
 union all 
select
    current_database()::text, s.nspname::text, t.relname::text,
    'MATERIALIZED VIEW'::text, a.attname::text,
    pg_catalog.format_type(a.atttypid, a.atttypmod)::text
from pg_attribute a
join pg_class t on a.attrelid = t.oid
join pg_namespace s on t.relnamespace = s.oid
where
    t.relkind = 'm'
    and a.attnum > 0
    and not a.attisdropped
    and s.nspname != 'information_schema' and s.nspname not like 'pg\_%' escape '\'
    and a.attname ilike '%deploy%' escape '\'
 order by 1, 2 nulls first, 3 nulls first, 5 nulls first;

-- [statement pid=0]
select
    c.table_catalog::text, c.table_schema::text, c.table_name::text,
    t.table_type::text, c.column_name::text, c.data_type::text
from information_schema.columns c
join information_schema.tables t
    on t.table_catalog = c.table_catalog
    and t.table_schema = c.table_schema
    and t.table_name = c.table_name
where
    c.table_catalog = current_database()
    and c.table_schema != 'information_schema' and c.table_schema not like 'pg\_%' escape '\'
    and c.column_name ilike '%serv%' escape '\'
 union all 
select
    current_database()::text, s.nspname::text, t.relname::text,
    'MATERIALIZED VIEW'::text, a.attname::text,
    pg_catalog.format_type(a.atttypid, a.atttypmod)::text
from pg_attribute a
join pg_class t on a.attrelid = t.oid
join pg_namespace s on t.relnamespace = s.oid
where
    t.relkind = 'm'
    and a.attnum > 0
    and not a.attisdropped
    and s.nspname != 'information_schema' and s.nspname not like 'pg\_%' escape '\'
    and a.attname ilike '%serv%' escape '\'
 order by 1, 2 nulls first, 3 nulls first, 5 nulls first;

