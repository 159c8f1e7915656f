-- tiercache: the Postgres ("supabase") tier.
--
-- Applied by `tiercache migrate` (or `psql -v ON_ERROR_STOP=1 -f schema.sql`) as the
-- role that owns the tables: `postgres` on plain PostgreSQL or Supabase, or a dedicated
-- owner role. Always apply it as the same role. It is idempotent: applying it again
-- changes nothing and keeps every row. It runs in one transaction and holds an advisory
-- lock, so two concurrent migrations do not interleave; it waits at most 2 s for any
-- lock (`tiercache migrate` tries again, see docs/database.md), so the writers queued
-- behind a migration that cannot get its locks wait no longer than that. No psql
-- meta-commands: the daemon sends this file as it is.
--
-- Project roles (members of tiercache_app) may only SELECT, and write through the
-- SECURITY DEFINER functions tiercache_write_cache, ... below, which check that the
-- calling role is the project's db_role. SELECT lets a role take no lock but ACCESS
-- SHARE, which blocks no writer: a project's role cannot stall another project.
--
-- Needs PostgreSQL 14 or later (plain PostgreSQL 15 and Supabase are the targets).
-- The Supabase parts (roles anon, authenticated, service_role) are applied only where
-- those roles exist. See docs/database.md for the roles to create and why.

BEGIN;

SET LOCAL lock_timeout = '2s';
SET LOCAL client_min_messages = warning;

DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tiercache schema.sql'));
    IF current_setting('server_version_num')::int < 140000 THEN
        RAISE EXCEPTION 'tiercache needs PostgreSQL 14 or later, this is %', version();
    END IF;
    -- The old app's cache_storage (no checksum, nullable project_id) is not ours: it
    -- must not be mistaken for a migrated table. Its rows are not moved silently.
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = to_regclass('public.cache_storage')
          AND attname = 'checksum' AND NOT attisdropped
    ) AND to_regclass('public.cache_storage') IS NOT NULL THEN
        RAISE EXCEPTION 'public.cache_storage exists but is not tiercache''s (no checksum column; it looks like the old app''s table)'
            USING HINT = 'Rename it (ALTER TABLE public.cache_storage RENAME TO cache_storage_seed), apply schema.sql, then bring its documents back with `tiercache import` (docs/database.md).';
    END IF;
END
$$;

-- The group role that every project's database role is made a member of
-- (GRANT tiercache_app TO <project role>). It cannot log in by itself.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tiercache_app') THEN
        BEGIN
            CREATE ROLE tiercache_app NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role tiercache_app does not exist and % may not create it', current_user
                USING HINT = 'Create it once as a role with CREATEROLE: CREATE ROLE tiercache_app NOLOGIN;';
        END;
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.projects (
    id           SERIAL PRIMARY KEY,
    project_name VARCHAR(100) NOT NULL UNIQUE,
    description  TEXT,
    -- The database role that may read and write this project's rows (compared with
    -- current_user by the policies below). NULL: only the owner sees the project.
    db_role      TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_active    BOOLEAN NOT NULL DEFAULT true
);
-- A projects table made by the old app has no db_role yet; adding it is safe.
ALTER TABLE public.projects ADD COLUMN IF NOT EXISTS db_role TEXT;

CREATE TABLE IF NOT EXISTS public.cache_storage (
    id              BIGSERIAL PRIMARY KEY,
    project_id      INTEGER NOT NULL
                    REFERENCES public.projects (id) ON DELETE CASCADE,
    cache_type      VARCHAR(50) NOT NULL
                    CONSTRAINT cache_storage_cache_type_format
                    CHECK (cache_type ~ '^[a-z][a-z0-9_-]{0,49}$'),
    -- The document, in the canonical form its checksum was taken over.
    data            JSONB NOT NULL,
    version         BIGINT NOT NULL
                    CONSTRAINT cache_storage_version_positive CHECK (version > 0),
    checksum        TEXT NOT NULL
                    CONSTRAINT cache_storage_checksum_format
                    CHECK (checksum ~ '^sha256:[0-9a-f]{64}$'),
    last_fetch      TIMESTAMPTZ,
    last_rich_fetch TIMESTAMPTZ,
    saved_at        TIMESTAMPTZ NOT NULL,
    -- Bytes of the canonical document; 64 MiB at most (docs/database.md).
    data_size       INTEGER NOT NULL
                    CONSTRAINT cache_storage_data_size_range
                    CHECK (data_size >= 0 AND data_size <= 67108864),
    retention_days  INTEGER NOT NULL DEFAULT 30
                    CONSTRAINT cache_storage_retention_days_range
                    CHECK (retention_days BETWEEN 1 AND 3650),
    metadata        JSONB DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Serves every query of the daemon: one cache by (project_id, cache_type), all of a
    -- project's caches by its leading column, the version-guarded upsert's ON CONFLICT,
    -- and the ON DELETE CASCADE from projects. No other index is needed (see docs).
    CONSTRAINT cache_storage_project_cache_key UNIQUE (project_id, cache_type)
);

-- Who wrote which cache, when, from which version to which. Written only by the
-- trigger below (as the owner); no other role may insert, change or delete its rows.
CREATE TABLE IF NOT EXISTS public.cache_audit (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    db_user     TEXT NOT NULL DEFAULT current_user,
    -- No foreign key: the audit outlives a deleted project.
    project_id  INTEGER NOT NULL,
    cache_type  VARCHAR(50) NOT NULL,
    operation   TEXT NOT NULL
                CONSTRAINT cache_audit_operation_check
                CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    old_version BIGINT,
    new_version BIGINT
);
-- The checksum each INSERT or UPDATE wrote: a writer whose answer was lost learns from
-- it whether its write went through before it sends it again.
ALTER TABLE public.cache_audit ADD COLUMN IF NOT EXISTS new_checksum TEXT;

COMMENT ON TABLE public.projects IS
    'tiercache projects; db_role names the database role that may use the project''s caches';
COMMENT ON TABLE public.cache_storage IS
    'tiercache: one row per (project, cache); the source of truth of the cache daemon';
-- State a source must never lose, such as Strava's rotated OAuth refresh token: saved
-- here (and in data_dir/sources/) before the daemon uses it, so neither a restart nor a
-- lost data_dir strands it with a dead token.
CREATE TABLE IF NOT EXISTS public.source_state (
    project_id  INTEGER NOT NULL
                REFERENCES public.projects (id) ON DELETE CASCADE,
    state_key   VARCHAR(100) NOT NULL
                CONSTRAINT source_state_key_format
                CHECK (state_key ~ '^[a-z]+:[a-z][a-z0-9_-]{0,49}$'),
    state       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT source_state_pkey PRIMARY KEY (project_id, state_key)
);

COMMENT ON TABLE public.source_state IS
    'tiercache: state a source must never lose (Strava''s rotated refresh token), one row per (project, source)';

COMMENT ON TABLE public.cache_audit IS
    'tiercache: every insert, update and delete of cache_storage, written by trigger';

-- lz4 compresses and, above all, decompresses large JSONB documents much faster than
-- the default pglz (PostgreSQL 14+, when the server is built with lz4, as Debian's and
-- Supabase's are). Rows already stored keep their compression until rewritten.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 AND EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'public.cache_storage'::regclass AND attname = 'data'
          AND attcompression IS DISTINCT FROM 'l'
    ) THEN
        BEGIN
            EXECUTE 'ALTER TABLE public.cache_storage ALTER COLUMN data SET COMPRESSION lz4';
        EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
            RAISE NOTICE 'lz4 is not available on this server; cache_storage.data keeps pglz';
        END;
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------
-- Who is calling
-- ---------------------------------------------------------------------------------

-- The role a statement runs for: the role set with SET ROLE if any, else the role that
-- logged in. Inside a SECURITY DEFINER function current_user is the function's owner,
-- so the audit trigger and the write functions ask this instead. Neither can be forged:
-- SET ROLE needs membership of that role, and only a superuser changes session_user.
-- (The policies below spell the same expression out, so that evaluating them needs no
-- EXECUTE right.)
CREATE OR REPLACE FUNCTION public.tiercache_session_role()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN current_setting('role') = 'none'
                THEN session_user::text
                ELSE current_setting('role') END
$$;

-- ---------------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------------

-- BEFORE UPDATE: keep updated_at current, and never let a row's version go down (the
-- daemon's upsert already guards with WHERE version < EXCLUDED.version; this catches
-- any other writer).
CREATE OR REPLACE FUNCTION public.tiercache_before_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.version < OLD.version THEN
        RAISE EXCEPTION 'cache_storage: version of %/% may not go down from % to %',
            OLD.project_id, OLD.cache_type, OLD.version, NEW.version
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER cache_storage_before_update
    BEFORE UPDATE ON public.cache_storage
    FOR EACH ROW EXECUTE FUNCTION public.tiercache_before_update();

-- AFTER INSERT/UPDATE/DELETE: one audit row per written row. SECURITY DEFINER, so it
-- inserts as the owner, while the project roles have no right to write the audit table.
-- The writer is the calling role (tiercache_session_role), not current_user, which is
-- the owner inside this function and inside the write functions below.
--
-- It sends no NOTIFY: a NOTIFY inside the write's transaction would make every write
-- fail while the cluster-wide notification queue is full (which one LISTENing session
-- of any project, idle in a transaction, can cause). The daemon sends its hint after
-- its own commit, and reads its project's row heads every few seconds anyway
-- (docs/scaling.md).
CREATE OR REPLACE FUNCTION public.tiercache_audit()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writer text := public.tiercache_session_role();
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO public.cache_audit
            (db_user, project_id, cache_type, operation, old_version, new_version)
        VALUES (writer, OLD.project_id, OLD.cache_type, TG_OP, OLD.version, NULL);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO public.cache_audit
            (db_user, project_id, cache_type, operation, old_version, new_version, new_checksum)
        VALUES (writer, NEW.project_id, NEW.cache_type, TG_OP, OLD.version, NEW.version, NEW.checksum);
    ELSE
        INSERT INTO public.cache_audit
            (db_user, project_id, cache_type, operation, old_version, new_version, new_checksum)
        VALUES (writer, NEW.project_id, NEW.cache_type, TG_OP, NULL, NEW.version, NEW.checksum);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER cache_storage_audit
    AFTER INSERT OR UPDATE OR DELETE ON public.cache_storage
    FOR EACH ROW EXECUTE FUNCTION public.tiercache_audit();

-- Trigger functions are never called directly; nobody needs EXECUTE on them.
REVOKE ALL ON FUNCTION public.tiercache_before_update() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tiercache_audit() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tiercache_session_role() FROM PUBLIC;

-- ---------------------------------------------------------------------------------
-- Writes
-- ---------------------------------------------------------------------------------
-- Every write of a project role goes through these functions. They run as the owner
-- (SECURITY DEFINER, fixed search_path), write only rows of the project they are given,
-- and first check that the calling role is that project's db_role: a caller can never
-- write another project's rows, whatever arguments it passes. The roles themselves
-- hold SELECT only, so they can take no lock that blocks another project's writers.
-- No dynamic SQL; every table is schema-qualified.

-- Raises SQLSTATE 28T01 unless the calling role is the db_role of project p_project_id,
-- or a role that reads and writes every row directly anyway (a superuser, or a role with
-- BYPASSRLS such as Supabase's service_role): for those the function grants nothing they
-- lack, and a project registered without a db_role stays theirs as it always was.
-- A class-28 error (invalid authorization) tells any client that this is the role's
-- standing, not the data's; tiercache's own code 28T01 tells the daemon that the role
-- is not (or no longer) registered for the project, an operator's fix: its saves wait
-- on disk.
CREATE OR REPLACE FUNCTION public.tiercache_check_caller(p_project_id integer)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    caller text := public.tiercache_session_role();
BEGIN
    IF p_project_id IS NULL OR NOT (
        EXISTS (SELECT 1 FROM public.projects p WHERE p.id = p_project_id AND p.db_role = caller)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                   WHERE r.rolname = caller AND (r.rolsuper OR r.rolbypassrls))
    ) THEN
        RAISE EXCEPTION 'role % is not the db_role of project id %', caller, p_project_id
            USING ERRCODE = '28T01',
                  HINT = 'Register the project with this role as its db_role (docs/database.md).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION public.tiercache_check_caller(integer) FROM PUBLIC;

-- Writes one cache's row and answers whether it wrote, with the row's version and
-- checksum after the call (version 0 and checksum NULL when there is no row).
--   p_expected NULL: the version guard: written only above the row's version (or when
--     there is no row), so a row never moves backwards.
--   p_expected N:    compare-and-set: written only if the row's version is exactly N,
--     an absent row counting as 0; p_version must be above N.
CREATE OR REPLACE FUNCTION public.tiercache_write_cache(
    p_project_id      integer,
    p_cache_type      text,
    p_data            jsonb,
    p_version         bigint,
    p_checksum        text,
    p_last_fetch      timestamptz,
    p_last_rich_fetch timestamptz,
    p_saved_at        timestamptz,
    p_data_size       integer,
    p_retention_days  integer,
    p_expected        bigint DEFAULT NULL)
RETURNS TABLE (written boolean, row_version bigint, row_checksum text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM public.tiercache_check_caller(p_project_id);
    IF p_expected IS NULL THEN
        INSERT INTO public.cache_storage AS c
            (project_id, cache_type, data, version, checksum, last_fetch, last_rich_fetch,
             saved_at, data_size, retention_days)
        VALUES (p_project_id, p_cache_type, p_data, p_version, p_checksum, p_last_fetch,
                p_last_rich_fetch, p_saved_at, p_data_size, p_retention_days)
        ON CONFLICT (project_id, cache_type) DO UPDATE SET
            data = EXCLUDED.data, version = EXCLUDED.version, checksum = EXCLUDED.checksum,
            last_fetch = EXCLUDED.last_fetch, last_rich_fetch = EXCLUDED.last_rich_fetch,
            saved_at = EXCLUDED.saved_at, data_size = EXCLUDED.data_size,
            retention_days = EXCLUDED.retention_days
        WHERE c.version < EXCLUDED.version;
    ELSIF p_expected < 0 OR p_version IS NULL OR p_version <= p_expected THEN
        RAISE EXCEPTION 'compare-and-set of %: version % must be above the expected %',
            p_cache_type, p_version, p_expected
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF p_expected = 0 THEN
        INSERT INTO public.cache_storage
            (project_id, cache_type, data, version, checksum, last_fetch, last_rich_fetch,
             saved_at, data_size, retention_days)
        VALUES (p_project_id, p_cache_type, p_data, p_version, p_checksum, p_last_fetch,
                p_last_rich_fetch, p_saved_at, p_data_size, p_retention_days)
        ON CONFLICT (project_id, cache_type) DO NOTHING;
    ELSE
        UPDATE public.cache_storage AS c SET
            data = p_data, version = p_version, checksum = p_checksum,
            last_fetch = p_last_fetch, last_rich_fetch = p_last_rich_fetch,
            saved_at = p_saved_at, data_size = p_data_size, retention_days = p_retention_days
        WHERE c.project_id = p_project_id AND c.cache_type = p_cache_type
          AND c.version = p_expected;
    END IF;
    IF FOUND THEN
        RETURN QUERY SELECT true, p_version, p_checksum;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT false, COALESCE(c.version, 0), c.checksum::text
        FROM (SELECT 1) AS one
        LEFT JOIN public.cache_storage AS c
               ON c.project_id = p_project_id AND c.cache_type = p_cache_type;
END
$$;

-- Deletes one cache's row if its version is at most p_version, the newest version the
-- deleting instance knew: a save another instance made after that is newer than the
-- delete, and stays. Answers whether a row was deleted. The earlier two-argument form
-- (unconditional) is dropped, so no client can delete a save it never saw.
DROP FUNCTION IF EXISTS public.tiercache_delete_cache(integer, text);
CREATE OR REPLACE FUNCTION public.tiercache_delete_cache(
    p_project_id integer, p_cache_type text, p_version bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM public.tiercache_check_caller(p_project_id);
    DELETE FROM public.cache_storage AS c
    WHERE c.project_id = p_project_id AND c.cache_type = p_cache_type
      AND c.version <= p_version;
    RETURN FOUND;
END
$$;

-- A successful check of the upstream that changed nothing (an HTTP 304): moves the
-- row's last_fetch forward, only while the row still holds exactly that version and
-- checksum. The other instances read it with the row heads, so the instance that leads
-- a cache's refreshes is seen refreshing even when nothing changes. Answers whether the
-- row moved.
CREATE OR REPLACE FUNCTION public.tiercache_record_check(
    p_project_id integer, p_cache_type text, p_version bigint, p_checksum text,
    p_last_fetch timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM public.tiercache_check_caller(p_project_id);
    UPDATE public.cache_storage AS c SET last_fetch = p_last_fetch
    WHERE c.project_id = p_project_id AND c.cache_type = p_cache_type
      AND c.version = p_version AND c.checksum = p_checksum
      AND (c.last_fetch IS NULL OR c.last_fetch < p_last_fetch);
    RETURN FOUND;
END
$$;

-- Retention: stores each configured cache's retention_days (p_names[i] gets p_days[i])
-- in its row now, not only at its next save. Answers how many rows changed.
CREATE OR REPLACE FUNCTION public.tiercache_store_retention(
    p_project_id integer, p_names text[], p_days integer[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    changed integer;
BEGIN
    PERFORM public.tiercache_check_caller(p_project_id);
    UPDATE public.cache_storage AS c SET retention_days = x.days
    FROM unnest(p_names, p_days) AS x(name, days)
    WHERE c.project_id = p_project_id AND c.cache_type = x.name
      AND c.retention_days <> x.days;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- Retention: deletes the rows of caches not in p_keep that are unsaved for their own
-- retention_days, and answers them. A row saved meanwhile is never deleted: the date
-- is checked here.
CREATE OR REPLACE FUNCTION public.tiercache_purge_unconfigured(p_project_id integer, p_keep text[])
RETURNS TABLE (purged_cache text, purged_saved_at timestamptz, purged_retention_days integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM public.tiercache_check_caller(p_project_id);
    RETURN QUERY
        WITH purged AS (
            DELETE FROM public.cache_storage AS c
            WHERE c.project_id = p_project_id AND NOT (c.cache_type = ANY (p_keep))
              AND c.saved_at < now() - make_interval(days => c.retention_days)
            RETURNING c.cache_type::text, c.saved_at, c.retention_days
        )
        SELECT * FROM purged;
END
$$;

-- A source's state (Strava's rotated refresh token), written or replaced.
CREATE OR REPLACE FUNCTION public.tiercache_save_state(p_project_id integer, p_key text, p_state jsonb)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM public.tiercache_check_caller(p_project_id);
    INSERT INTO public.source_state AS s (project_id, state_key, state)
    VALUES (p_project_id, p_key, p_state)
    ON CONFLICT (project_id, state_key) DO UPDATE SET state = EXCLUDED.state, updated_at = now();
END
$$;

-- Forgets a source's state (a deauthorized Strava athlete); answers whether there was one.
CREATE OR REPLACE FUNCTION public.tiercache_delete_state(p_project_id integer, p_key text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM public.tiercache_check_caller(p_project_id);
    DELETE FROM public.source_state AS s WHERE s.project_id = p_project_id AND s.state_key = p_key;
    RETURN FOUND;
END
$$;

-- ---------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------
-- A role sees only the rows of the project whose db_role it is. FORCE makes the owner
-- obey the policies too (unless it is a superuser or has BYPASSRLS, as `postgres` and
-- `service_role` on Supabase do), so a daemon run by mistake as a plain owner role
-- cannot read or overwrite other projects. cache_audit is not FORCEd: the owner must
-- write it from the trigger, and no one else has the right to write it.
--
-- The role compared with db_role is current_user or the calling role (the expression
-- of tiercache_session_role, spelt out). The two differ only inside a SECURITY DEFINER
-- function, where current_user is the function's owner: so the write functions above,
-- run as a FORCEd owner, still reach the caller's project (and only after checking the
-- caller), while outside them nothing changes.

ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.projects FORCE ROW LEVEL SECURITY;
ALTER TABLE public.cache_storage ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.cache_storage FORCE ROW LEVEL SECURITY;
ALTER TABLE public.cache_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.cache_audit NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.source_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.source_state FORCE ROW LEVEL SECURITY;

-- The old app's policy: auth.role() does not exist on plain PostgreSQL, is NULL on a
-- direct connection, and the roles it names bypass RLS anyway. It protects nothing.
DROP POLICY IF EXISTS "Service role can manage cache" ON public.cache_storage;

DROP POLICY IF EXISTS tiercache_own_project ON public.projects;
CREATE POLICY tiercache_own_project ON public.projects
    FOR ALL TO PUBLIC
    USING (db_role IN (current_user, CASE WHEN current_setting('role') = 'none'
                                          THEN session_user::text
                                          ELSE current_setting('role') END))
    WITH CHECK (db_role = current_user);

DROP POLICY IF EXISTS tiercache_own_caches ON public.cache_storage;
CREATE POLICY tiercache_own_caches ON public.cache_storage
    FOR ALL TO PUBLIC
    USING (project_id IN (
        SELECT p.id FROM public.projects p
        WHERE p.db_role IN (current_user, CASE WHEN current_setting('role') = 'none'
                                               THEN session_user::text
                                               ELSE current_setting('role') END)))
    WITH CHECK (project_id IN (
        SELECT p.id FROM public.projects p
        WHERE p.db_role IN (current_user, CASE WHEN current_setting('role') = 'none'
                                               THEN session_user::text
                                               ELSE current_setting('role') END)));

DROP POLICY IF EXISTS tiercache_own_state ON public.source_state;
CREATE POLICY tiercache_own_state ON public.source_state
    FOR ALL TO PUBLIC
    USING (project_id IN (
        SELECT p.id FROM public.projects p
        WHERE p.db_role IN (current_user, CASE WHEN current_setting('role') = 'none'
                                               THEN session_user::text
                                               ELSE current_setting('role') END)))
    WITH CHECK (project_id IN (
        SELECT p.id FROM public.projects p
        WHERE p.db_role IN (current_user, CASE WHEN current_setting('role') = 'none'
                                               THEN session_user::text
                                               ELSE current_setting('role') END)));

DROP POLICY IF EXISTS tiercache_own_audit ON public.cache_audit;
CREATE POLICY tiercache_own_audit ON public.cache_audit
    FOR SELECT TO PUBLIC
    USING (project_id IN (SELECT p.id FROM public.projects p WHERE p.db_role = current_user));

-- ---------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------
-- Project roles (members of tiercache_app): read their project row, their caches,
-- their sources' state and their audit; write only through the functions above. No
-- INSERT, UPDATE, DELETE, TRUNCATE (nor MAINTAIN, on PostgreSQL 17) on any table: any
-- of those lets a role LOCK a whole table in a mode that blocks every project's
-- writers, and UPDATE also lets it lock rows with SELECT ... FOR UPDATE. With SELECT
-- alone a role can take ACCESS SHARE only, which blocks no writer. PUBLIC has no table
-- privileges by default; the REVOKEs make sure of it.
--
-- A database made by an earlier schema.sql gave project roles INSERT, UPDATE and DELETE:
-- everything is revoked from tiercache_app and granted back, and a write right granted
-- to a member of tiercache_app directly (not through the group) is revoked too.

REVOKE ALL ON public.projects, public.cache_storage, public.cache_audit, public.source_state FROM PUBLIC;
REVOKE ALL ON SEQUENCE public.projects_id_seq, public.cache_storage_id_seq,
    public.cache_audit_id_seq FROM PUBLIC;

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT c.oid::regclass::text AS tbl, g.grantee::regrole::text AS grantee
        FROM pg_class c
        CROSS JOIN LATERAL aclexplode(c.relacl) g
        WHERE c.oid IN ('public.projects'::regclass, 'public.cache_storage'::regclass,
                        'public.cache_audit'::regclass, 'public.source_state'::regclass)
          AND g.grantee <> 0 AND g.grantee <> c.relowner
          AND g.grantee <> 'tiercache_app'::regrole
          AND g.privilege_type <> 'SELECT'
          AND pg_has_role(g.grantee, 'tiercache_app', 'MEMBER')
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', r.tbl, r.grantee);
    END LOOP;
END
$$;

REVOKE ALL ON public.projects, public.cache_storage, public.cache_audit, public.source_state FROM tiercache_app;
REVOKE ALL ON SEQUENCE public.cache_storage_id_seq FROM tiercache_app;
GRANT USAGE ON SCHEMA public TO tiercache_app;
GRANT SELECT ON public.projects, public.cache_storage, public.cache_audit, public.source_state TO tiercache_app;

REVOKE ALL ON FUNCTION
    public.tiercache_write_cache(integer, text, jsonb, bigint, text, timestamptz, timestamptz,
                                 timestamptz, integer, integer, bigint),
    public.tiercache_delete_cache(integer, text, bigint),
    public.tiercache_record_check(integer, text, bigint, text, timestamptz),
    public.tiercache_store_retention(integer, text[], integer[]),
    public.tiercache_purge_unconfigured(integer, text[]),
    public.tiercache_save_state(integer, text, jsonb),
    public.tiercache_delete_state(integer, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    public.tiercache_write_cache(integer, text, jsonb, bigint, text, timestamptz, timestamptz,
                                 timestamptz, integer, integer, bigint),
    public.tiercache_delete_cache(integer, text, bigint),
    public.tiercache_record_check(integer, text, bigint, text, timestamptz),
    public.tiercache_store_retention(integer, text[], integer[]),
    public.tiercache_purge_unconfigured(integer, text[]),
    public.tiercache_save_state(integer, text, jsonb),
    public.tiercache_delete_state(integer, text)
TO tiercache_app;

-- ---------------------------------------------------------------------------------
-- Supabase (only where its roles exist)
-- ---------------------------------------------------------------------------------
-- Supabase grants anon, authenticated and service_role every right on new tables,
-- sequences and functions in public (its default privileges), TRUNCATE, TRIGGER and
-- REFERENCES included: TRUNCATE would wipe every project's rows without an audit row,
-- and a trigger added to the audit table would make every write fail. tiercache's
-- objects are not for the Data API, so all of it is taken back. The objects are found
-- by query, not listed by hand, so a table added to this file later cannot be
-- forgotten: every table whose comment starts with "tiercache", the sequences those
-- tables own, and every function named tiercache_*. service_role then gets back only
-- what it needs to manage the caches (it has BYPASSRLS; the policies keep it working
-- should that ever change): no TRUNCATE, TRIGGER or REFERENCES anywhere, read-only
-- audit, no UPDATE (setval) on any sequence.
DO $$
DECLARE
    r text;
    obj text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        FOR obj IN
            SELECT c.oid::regclass::text FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
              AND obj_description(c.oid, 'pg_class') LIKE 'tiercache%'
        LOOP
            EXECUTE format('REVOKE ALL ON TABLE %s FROM %I', obj, r);
        END LOOP;
        FOR obj IN
            SELECT s.oid::regclass::text FROM pg_class s
            JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                            AND d.refclassid = 'pg_class'::regclass
            WHERE s.relkind = 'S' AND obj_description(d.refobjid, 'pg_class') LIKE 'tiercache%'
        LOOP
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I', obj, r);
        END LOOP;
        FOR obj IN
            SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'tiercache\_%'
        LOOP
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', obj, r);
        END LOOP;
    END LOOP;

    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        EXECUTE 'GRANT SELECT ON public.cache_audit TO service_role';
        EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON public.projects, public.cache_storage, public.source_state TO service_role';
        EXECUTE 'GRANT USAGE ON SEQUENCE public.projects_id_seq, public.cache_storage_id_seq TO service_role';

        EXECUTE 'DROP POLICY IF EXISTS tiercache_service_role ON public.projects';
        EXECUTE 'CREATE POLICY tiercache_service_role ON public.projects FOR ALL TO service_role USING (true) WITH CHECK (true)';
        EXECUTE 'DROP POLICY IF EXISTS tiercache_service_role ON public.cache_storage';
        EXECUTE 'CREATE POLICY tiercache_service_role ON public.cache_storage FOR ALL TO service_role USING (true) WITH CHECK (true)';
        EXECUTE 'DROP POLICY IF EXISTS tiercache_service_role ON public.source_state';
        EXECUTE 'CREATE POLICY tiercache_service_role ON public.source_state FOR ALL TO service_role USING (true) WITH CHECK (true)';
        EXECUTE 'DROP POLICY IF EXISTS tiercache_service_role ON public.cache_audit';
        EXECUTE 'CREATE POLICY tiercache_service_role ON public.cache_audit FOR SELECT TO service_role USING (true)';
    END IF;
END
$$;

COMMIT;
