-- tiercache: the Postgres ("supabase") tier.
--
-- Applied by `tiercache migrate` (or `psql -v ON_ERROR_STOP=1 -f schema.sql`) as the
-- role that owns the tables: `postgres` on plain PostgreSQL or Supabase, or a dedicated
-- owner role. Always apply it as the same role. It is idempotent: applying it again
-- changes nothing and keeps every row. It runs in one transaction and holds an advisory
-- lock, so two concurrent migrations do not interleave. No psql meta-commands: the
-- daemon sends this file as it is.
--
-- Needs PostgreSQL 14 or later (plain PostgreSQL 15 and Supabase are the targets).
-- The Supabase parts (roles anon, authenticated, service_role) are applied only where
-- those roles exist. See docs/database.md for the roles to create and why.

BEGIN;

SET LOCAL lock_timeout = '15s';
SET LOCAL client_min_messages = warning;

DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tiercache schema.sql'));
    IF current_setting('server_version_num')::int < 140000 THEN
        RAISE EXCEPTION 'tiercache needs PostgreSQL 14 or later, this is %', version();
    END IF;
    -- The seed plan's cache_storage (no checksum, nullable project_id) is not ours: it
    -- must not be mistaken for a migrated table. Its rows are not moved silently.
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = to_regclass('public.cache_storage')
          AND attname = 'checksum' AND NOT attisdropped
    ) AND to_regclass('public.cache_storage') IS NOT NULL THEN
        RAISE EXCEPTION 'public.cache_storage exists but is not tiercache''s (no checksum column; it looks like the seed plan''s table)'
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
-- A projects table made by the seed plan has no db_role yet; adding it is safe.
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
-- Inside it current_user is the owner, so the writer is taken from the session: the
-- role set with SET ROLE if any, else the role that logged in.
CREATE OR REPLACE FUNCTION public.tiercache_audit()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writer text := CASE WHEN current_setting('role') = 'none'
                        THEN session_user::text
                        ELSE current_setting('role') END;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO public.cache_audit
            (db_user, project_id, cache_type, operation, old_version, new_version)
        VALUES (writer, OLD.project_id, OLD.cache_type, TG_OP, OLD.version, NULL);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO public.cache_audit
            (db_user, project_id, cache_type, operation, old_version, new_version)
        VALUES (writer, NEW.project_id, NEW.cache_type, TG_OP, OLD.version, NEW.version);
    ELSE
        INSERT INTO public.cache_audit
            (db_user, project_id, cache_type, operation, old_version, new_version)
        VALUES (writer, NEW.project_id, NEW.cache_type, TG_OP, NULL, NEW.version);
    END IF;
    -- Every instance of the project LISTENs here and then reads its rows back through
    -- its own connection (row-level security applies), replacing or dropping its copies.
    -- Delivered at commit. The payload is empty: any role may LISTEN on any channel, so
    -- a notification must tell nobody another project's cache names, versions or
    -- operations; and any role may NOTIFY, so the daemon never acts on a payload.
    PERFORM pg_notify('tiercache_' || COALESCE(NEW.project_id, OLD.project_id), '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER cache_storage_audit
    AFTER INSERT OR UPDATE OR DELETE ON public.cache_storage
    FOR EACH ROW EXECUTE FUNCTION public.tiercache_audit();

-- Trigger functions are never called directly; nobody needs EXECUTE on them.
REVOKE ALL ON FUNCTION public.tiercache_before_update() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tiercache_audit() FROM PUBLIC;

-- ---------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------
-- A role sees and writes only the rows of the project whose db_role it is. FORCE makes
-- the owner obey the policies too (unless it is a superuser or has BYPASSRLS, as
-- `postgres` and `service_role` on Supabase do), so a daemon run by mistake as a plain
-- owner role cannot read or overwrite other projects. cache_audit is not FORCEd: the
-- owner must write it from the trigger, and no one else has the right to write it.

ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.projects FORCE ROW LEVEL SECURITY;
ALTER TABLE public.cache_storage ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.cache_storage FORCE ROW LEVEL SECURITY;
ALTER TABLE public.cache_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.cache_audit NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.source_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.source_state FORCE ROW LEVEL SECURITY;

-- The seed plan's policy: auth.role() does not exist on plain PostgreSQL, is NULL on a
-- direct connection, and the roles it names bypass RLS anyway. It protects nothing.
DROP POLICY IF EXISTS "Service role can manage cache" ON public.cache_storage;

DROP POLICY IF EXISTS tiercache_own_project ON public.projects;
CREATE POLICY tiercache_own_project ON public.projects
    FOR ALL TO PUBLIC
    USING (db_role = current_user)
    WITH CHECK (db_role = current_user);

DROP POLICY IF EXISTS tiercache_own_caches ON public.cache_storage;
CREATE POLICY tiercache_own_caches ON public.cache_storage
    FOR ALL TO PUBLIC
    USING (project_id IN (SELECT p.id FROM public.projects p WHERE p.db_role = current_user))
    WITH CHECK (project_id IN (SELECT p.id FROM public.projects p WHERE p.db_role = current_user));

DROP POLICY IF EXISTS tiercache_own_state ON public.source_state;
CREATE POLICY tiercache_own_state ON public.source_state
    FOR ALL TO PUBLIC
    USING (project_id IN (SELECT p.id FROM public.projects p WHERE p.db_role = current_user))
    WITH CHECK (project_id IN (SELECT p.id FROM public.projects p WHERE p.db_role = current_user));

DROP POLICY IF EXISTS tiercache_own_audit ON public.cache_audit;
CREATE POLICY tiercache_own_audit ON public.cache_audit
    FOR SELECT TO PUBLIC
    USING (project_id IN (SELECT p.id FROM public.projects p WHERE p.db_role = current_user));

-- ---------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------
-- Project roles (members of tiercache_app): read their project row; read and write
-- their caches; read their audit. They cannot create or change projects, nor write the
-- audit. PUBLIC has no table privileges by default; the REVOKEs make sure of it.

REVOKE ALL ON public.projects, public.cache_storage, public.cache_audit, public.source_state FROM PUBLIC;
REVOKE ALL ON SEQUENCE public.projects_id_seq, public.cache_storage_id_seq,
    public.cache_audit_id_seq FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO tiercache_app;
GRANT SELECT ON public.projects TO tiercache_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.cache_storage TO tiercache_app;
GRANT USAGE ON SEQUENCE public.cache_storage_id_seq TO tiercache_app;
GRANT SELECT ON public.cache_audit TO tiercache_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.source_state TO tiercache_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON public.cache_audit FROM tiercache_app;

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
