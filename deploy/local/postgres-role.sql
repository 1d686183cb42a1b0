-- The local stack's role and database on PostgreSQL, run by deploy/local/stack.sh as the server's superuser
-- (psql as the postgres OS user over the local socket), with :verifier set to the SCRAM-SHA-256 verifier of
-- the generated password in .stack/secrets/postgres.password. Idempotent: it also brings back a role whose
-- password changed and takes over a database created by an earlier stack that connected as postgres.
--
-- The role is no superuser. CREATEDB is for the tests, which create and drop their throwaway databases
-- (cl_test_*) with it; owning its database is all the stack and its migrations need.

SELECT 'CREATE ROLE cloudlunacy' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cloudlunacy')
\gexec
ALTER ROLE cloudlunacy WITH LOGIN CREATEDB PASSWORD :'verifier';

SELECT 'CREATE DATABASE cloudlunacy OWNER cloudlunacy'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'cloudlunacy')
\gexec
ALTER DATABASE cloudlunacy OWNER TO cloudlunacy;

-- Objects in the database that another role owns (an earlier stack migrated it as postgres): the role takes
-- them over. A table brings its indexes and its columns' sequences along.
\connect cloudlunacy
DO $$
DECLARE
  statement text;
BEGIN
  FOR statement IN
    SELECT format('ALTER SCHEMA %I OWNER TO cloudlunacy', n.nspname)
      FROM pg_namespace n
     WHERE n.nspowner <> 'cloudlunacy'::regrole
       AND n.nspname NOT LIKE 'pg\_%' AND n.nspname NOT IN ('information_schema', 'public')
    UNION ALL
    SELECT format('ALTER %s %s OWNER TO cloudlunacy',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                  c.oid::regclass)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relowner <> 'cloudlunacy'::regrole
       AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
       AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d
                                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                               AND d.deptype IN ('a', 'i')))
    UNION ALL
    SELECT format('ALTER ROUTINE %s OWNER TO cloudlunacy', p.oid::regprocedure)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.proowner <> 'cloudlunacy'::regrole
       AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER %s %s OWNER TO cloudlunacy', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype)
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typowner <> 'cloudlunacy'::regrole AND t.typtype IN ('e', 'd', 'r')
       AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
  LOOP
    EXECUTE statement;
  END LOOP;
END
$$;
