-- pam-mfa's database, version 2: the store of a fleet. Every rule that
-- touches a secret runs here, in functions owned by mfa_owner (SECURITY
-- DEFINER, search_path pinned to pg_catalog): a host's role (a member of
-- mfa_host) may call them and nothing else, so it can have a code checked
-- but never read a secret, a recovery hash or another host's audit.
-- Each function is one transaction: one code, one success, fleet-wide.
--
-- Time is the database's own (mfa.now()), never a host's: a host with a
-- wrong clock cannot end a lockout early or bring back a used step.
-- Applied by `mfa-db setup`; every statement may run again.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mfa_owner') THEN
        CREATE ROLE mfa_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mfa_host') THEN
        CREATE ROLE mfa_host NOLOGIN;
    END IF;
END
$$;

-- The owner of everything below; nobody logs in as it.
ALTER SCHEMA mfa OWNER TO mfa_owner;
REVOKE ALL ON SCHEMA mfa FROM PUBLIC;
GRANT USAGE ON SCHEMA mfa TO mfa_host;

-- One enrolled user. The secret is raw bytes; recovery codes are salted
-- SHA-256 hashes (hex) of their canonical form.
CREATE TABLE IF NOT EXISTS mfa.account (
    username text PRIMARY KEY,
    secret bytea NOT NULL CHECK (length(secret) >= 10),
    algorithm text NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits integer NOT NULL CHECK (digits BETWEEN 6 AND 8),
    period bigint NOT NULL CHECK (period BETWEEN 1 AND 3600),
    enrolled_at bigint NOT NULL,
    last_step bigint,
    failures integer NOT NULL DEFAULT 0,
    lockouts integer NOT NULL DEFAULT 0,
    locked_until bigint NOT NULL DEFAULT 0,
    skew bigint,
    max_failures bigint,
    lockout_seconds bigint,
    recovery_salt text NOT NULL DEFAULT '',
    recovery_hashes text[] NOT NULL DEFAULT '{}',
    push_blocked_since bigint NOT NULL DEFAULT 0
);

-- Failures per remote address, under [limits] scope = "user+address".
CREATE TABLE IF NOT EXISTS mfa.address_limit (
    username text NOT NULL REFERENCES mfa.account ON DELETE CASCADE,
    address text NOT NULL,
    failures integer NOT NULL,
    lockouts integer NOT NULL,
    locked_until bigint NOT NULL,
    PRIMARY KEY (username, address)
);

-- Devices that may skip the second factor until `until`.
CREATE TABLE IF NOT EXISTS mfa.remembered (
    id bigserial PRIMARY KEY,
    username text NOT NULL REFERENCES mfa.account ON DELETE CASCADE,
    key text NOT NULL,
    rhost text NOT NULL,
    service text NOT NULL,
    until bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS remembered_user ON mfa.remembered (username);

-- A started enrollment waiting for its first code.
CREATE TABLE IF NOT EXISTS mfa.pending (
    username text PRIMARY KEY,
    secret bytea NOT NULL,
    algorithm text NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits integer NOT NULL CHECK (digits BETWEEN 6 AND 8),
    period bigint NOT NULL CHECK (period BETWEEN 1 AND 3600),
    expires_at bigint NOT NULL,
    tries_left integer NOT NULL
);

-- Number-matching challenges. `host` is the role of the host whose
-- requester made it; audit session ids only mean something on that host.
CREATE TABLE IF NOT EXISTS mfa.challenge (
    id text PRIMARY KEY,
    username text NOT NULL,
    number integer NOT NULL,
    context jsonb NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    host text NOT NULL,
    requester_session bigint,
    creator text NOT NULL,
    test boolean NOT NULL,
    outcome text,
    ended_at bigint
);
CREATE INDEX IF NOT EXISTS challenge_user ON mfa.challenge (username);
CREATE INDEX IF NOT EXISTS challenge_creator ON mfa.challenge (host, creator);

-- Each user's budget of new push requests (a token bucket).
CREATE TABLE IF NOT EXISTS mfa.push_budget (
    username text PRIMARY KEY,
    available bigint NOT NULL,
    counted_at bigint NOT NULL
);

-- What happened, where: hosts append through the functions, never read.
CREATE TABLE IF NOT EXISTS mfa.audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    host text NOT NULL DEFAULT session_user,
    username text NOT NULL,
    service text NOT NULL,
    rhost text NOT NULL,
    result text NOT NULL
);

ALTER TABLE mfa.account OWNER TO mfa_owner;
ALTER TABLE mfa.address_limit OWNER TO mfa_owner;
ALTER TABLE mfa.remembered OWNER TO mfa_owner;
ALTER TABLE mfa.pending OWNER TO mfa_owner;
ALTER TABLE mfa.challenge OWNER TO mfa_owner;
ALTER TABLE mfa.push_budget OWNER TO mfa_owner;
ALTER TABLE mfa.audit OWNER TO mfa_owner;
REVOKE ALL ON ALL TABLES IN SCHEMA mfa FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA mfa FROM PUBLIC;

-- The owner's functions call pgcrypto's; nobody else may.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA mfa FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mfa.hmac(bytea, bytea, text) TO mfa_owner;
GRANT EXECUTE ON FUNCTION mfa.digest(text, text) TO mfa_owner;
GRANT EXECUTE ON FUNCTION mfa.gen_random_bytes(integer) TO mfa_owner;
ALTER FUNCTION mfa.totp_code(bytea, text, integer, bigint, bigint) OWNER TO mfa_owner;

-- The database's time, in whole unix seconds.
-- (The transaction's start: each function call is one transaction.)
CREATE OR REPLACE FUNCTION mfa.now() RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT floor(extract(epoch FROM pg_catalog.now()))::bigint $$;

-- The latest step within `skew` of `at` whose code is `code` (NULL: none).
-- Every step is computed, so the time taken does not say which matched.
CREATE OR REPLACE FUNCTION mfa.matching_step(
    secret bytea, algorithm text, digits integer, period bigint,
    code text, at bigint, skew bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current bigint := at / period;
    step bigint;
    matched bigint;
BEGIN
    IF code IS NULL OR length(code) <> digits OR code !~ '^[0-9]+$' THEN
        RETURN NULL;
    END IF;
    FOR step IN greatest(current - skew, 0) .. current + skew LOOP
        IF mfa.totp_code(secret, algorithm, digits, period, step * period) = code THEN
            matched := step;
        END IF;
    END LOOP;
    RETURN matched;
END
$$;

-- A failure counted on (failures, lockouts, locked_until) at `at`:
-- lockout after `max_failures`, each next one twice as long, up to `max`.
CREATE OR REPLACE FUNCTION mfa.after_failure(
    failures integer, lockouts integer, locked_until bigint,
    max_failures bigint, lockout_seconds bigint, lockout_max bigint, at bigint,
    OUT new_failures integer, OUT new_lockouts integer, OUT new_until bigint)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF failures + 1 < max_failures THEN
        new_failures := failures + 1;
        new_lockouts := lockouts;
        new_until := locked_until;
    ELSE
        new_failures := 0;
        new_lockouts := lockouts + 1;
        new_until := at + least(
            lockout_seconds::numeric * (2::numeric ^ least(lockouts, 32)),
            lockout_max::numeric)::bigint;
    END IF;
END
$$;

-- Checks a code (or a recovery code's canonical form) of `who` and keeps
-- its effect: the used step, the spent recovery code, the counted failure
-- or lockout, the remembered device, the end of a push block; audited.
-- No row when `who` is not enrolled.
CREATE OR REPLACE FUNCTION mfa.verify(
    who text, code text, recovery text, address text,
    device_key text, device_rhost text, device_service text,
    skew bigint, max_failures bigint, lockout_seconds bigint, lockout_max bigint,
    remember_seconds bigint, service text, rhost text)
RETURNS TABLE (verdict text, retry_after bigint, unblocked boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    a mfa.account;
    f integer;
    l integer;
    u bigint;
    step bigint;
    hash text;
    result text;
    success boolean;
BEGIN
    SELECT * INTO a FROM mfa.account WHERE username = who FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO mfa.audit (username, service, rhost, result)
            VALUES (who, service, rhost, 'not-enrolled');
        RETURN;
    END IF;
    IF address IS NULL THEN
        f := a.failures; l := a.lockouts; u := a.locked_until;
    ELSE
        SELECT x.failures, x.lockouts, x.locked_until INTO f, l, u
            FROM mfa.address_limit x WHERE x.username = who AND x.address = verify.address;
        IF NOT FOUND THEN
            f := 0; l := 0; u := 0;
        END IF;
    END IF;
    IF u > at THEN
        INSERT INTO mfa.audit (username, service, rhost, result)
            VALUES (who, service, rhost, 'locked-out');
        RETURN QUERY SELECT 'locked-out'::text, u - at, false;
        RETURN;
    END IF;

    step := mfa.matching_step(a.secret, a.algorithm, a.digits, a.period, code, at,
        least(greatest(coalesce(a.skew, verify.skew), 0), 10));
    IF step IS NULL THEN
        result := 'rejected';
    ELSIF a.last_step IS NOT NULL AND step <= a.last_step THEN
        result := 'replayed';
    ELSE
        result := 'accepted';
        UPDATE mfa.account SET last_step = step WHERE username = who;
    END IF;
    IF result = 'rejected' AND recovery IS NOT NULL THEN
        hash := encode(mfa.digest(a.recovery_salt || ':' || recovery, 'sha256'), 'hex');
        IF hash = ANY (a.recovery_hashes) THEN
            result := 'recovery-accepted';
            UPDATE mfa.account SET recovery_hashes = array_remove(recovery_hashes, hash)
                WHERE username = who;
        END IF;
    END IF;
    success := result IN ('accepted', 'recovery-accepted');

    IF success THEN
        f := 0; l := 0; u := 0;
    ELSE
        -- The host's limits, held to the config's own ranges.
        SELECT * INTO f, l, u FROM mfa.after_failure(f, l, u,
            least(greatest(coalesce(a.max_failures, max_failures), 1), 100),
            least(greatest(coalesce(a.lockout_seconds, lockout_seconds), 1), 86400),
            least(greatest(lockout_max, 1), 604800), at);
    END IF;
    IF address IS NULL THEN
        UPDATE mfa.account SET failures = f, lockouts = l, locked_until = u
            WHERE username = who;
    ELSIF f = 0 AND l = 0 AND u = 0 THEN
        DELETE FROM mfa.address_limit x WHERE x.username = who AND x.address = verify.address;
    ELSE
        INSERT INTO mfa.address_limit VALUES (who, address, f, l, u)
            ON CONFLICT ON CONSTRAINT address_limit_pkey DO UPDATE
            SET failures = f, lockouts = l, locked_until = u;
        -- Bounded: addresses that stopped counting go first, then the
        -- lockouts that end soonest.
        IF (SELECT count(*) FROM mfa.address_limit x WHERE x.username = who) > 256 THEN
            DELETE FROM mfa.address_limit x WHERE x.username = who
                AND x.failures = 0 AND x.locked_until <= at;
            DELETE FROM mfa.address_limit x WHERE x.username = who AND x.address IN (
                SELECT y.address FROM mfa.address_limit y WHERE y.username = who
                ORDER BY y.locked_until DESC OFFSET 256);
        END IF;
    END IF;

    remember_seconds := least(greatest(remember_seconds, 0), 2592000);
    IF result = 'accepted' AND remember_seconds > 0 AND device_key <> '' THEN
        DELETE FROM mfa.remembered r WHERE r.username = who AND (r.until <= at
            OR (r.key = device_key AND r.rhost = device_rhost AND r.service = device_service));
        INSERT INTO mfa.remembered (username, key, rhost, service, until)
            VALUES (who, device_key, device_rhost, device_service, at + remember_seconds);
        DELETE FROM mfa.remembered r WHERE r.username = who AND r.id NOT IN (
            SELECT s.id FROM mfa.remembered s WHERE s.username = who
            ORDER BY s.id DESC LIMIT 32);
    END IF;
    IF success AND a.push_blocked_since <> 0 THEN
        -- A code login: the user is back in control of the account.
        UPDATE mfa.account SET push_blocked_since = 0 WHERE username = who;
    END IF;
    INSERT INTO mfa.audit (username, service, rhost, result) VALUES (who, service, rhost, result);
    RETURN QUERY SELECT result, greatest(u - at, 0), success AND a.push_blocked_since <> 0;
END
$$;

-- What may be told of an account without its secret; no row: not enrolled.
CREATE OR REPLACE FUNCTION mfa.summary(who text)
RETURNS TABLE (enrolled bigint, recovery_left integer, locked_for bigint, blocked_since bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.enrolled_at, cardinality(a.recovery_hashes),
        greatest(a.locked_until - mfa.now(), coalesce((SELECT max(x.locked_until)
            FROM mfa.address_limit x WHERE x.username = who), 0) - mfa.now(), 0),
        a.push_blocked_since
    FROM mfa.account a WHERE a.username = who
$$;

CREATE OR REPLACE FUNCTION mfa.users()
RETURNS TABLE (who text, enrolled bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT username, enrolled_at FROM mfa.account ORDER BY username $$;

CREATE OR REPLACE FUNCTION mfa.is_remembered(
    who text, device_key text, device_rhost text, device_service text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM mfa.remembered r WHERE r.username = who
        AND r.key <> '' AND r.key = device_key AND r.rhost = device_rhost
        AND r.service = device_service AND r.until > mfa.now())
$$;

-- Forgets every remembered device; how many were still valid (NULL: not enrolled).
CREATE OR REPLACE FUNCTION mfa.forget_devices(who text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    valid integer;
BEGIN
    PERFORM FROM mfa.account WHERE username = who FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO valid FROM mfa.remembered r
        WHERE r.username = who AND r.until > mfa.now();
    DELETE FROM mfa.remembered r WHERE r.username = who;
    RETURN valid;
END
$$;

-- Blocks push requests (from now) or unblocks them; whether they were
-- blocked before (NULL: not enrolled).
CREATE OR REPLACE FUNCTION mfa.set_push_blocked(who text, block boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    was bigint;
BEGIN
    SELECT push_blocked_since INTO was FROM mfa.account WHERE username = who FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE mfa.account SET push_blocked_since = CASE WHEN block THEN greatest(mfa.now(), 1) ELSE 0 END
        WHERE username = who;
    RETURN was <> 0;
END
$$;

-- Starts an enrollment: the secret is made here and returned once, for
-- the QR code. Replaces any other pending enrollment of the user.
CREATE OR REPLACE FUNCTION mfa.begin_enrollment(
    who text, algorithm text, digits integer, period bigint, secret_bytes integer,
    ttl bigint, tries integer)
RETURNS bytea
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    secret bytea := mfa.gen_random_bytes(greatest(least(secret_bytes, 64), 16));
BEGIN
    DELETE FROM mfa.pending p WHERE p.expires_at <= mfa.now();
    INSERT INTO mfa.pending VALUES (who, secret, algorithm, digits, period, mfa.now() + ttl, tries)
        ON CONFLICT (username) DO UPDATE SET secret = EXCLUDED.secret,
            algorithm = EXCLUDED.algorithm, digits = EXCLUDED.digits,
            period = EXCLUDED.period, expires_at = EXCLUDED.expires_at,
            tries_left = EXCLUDED.tries_left;
    RETURN secret;
END
$$;

CREATE OR REPLACE FUNCTION mfa.has_pending(who text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT FROM mfa.pending p WHERE p.username = who AND p.expires_at > mfa.now()) $$;

-- Confirms the pending enrollment with its first code: 'confirmed',
-- 'no-pending', 'expired', 'wrong-code' (with the tries left) or
-- 'too-many-tries'. On success the enrollment replaces any active one.
CREATE OR REPLACE FUNCTION mfa.confirm_enrollment(
    who text, code text, skew bigint, salt text, hashes text[])
RETURNS TABLE (confirmation text, tries integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    p mfa.pending;
    step bigint;
BEGIN
    SELECT * INTO p FROM mfa.pending x WHERE x.username = who FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no-pending'::text, 0;
        RETURN;
    END IF;
    IF p.expires_at <= at THEN
        DELETE FROM mfa.pending x WHERE x.username = who;
        RETURN QUERY SELECT 'expired'::text, 0;
        RETURN;
    END IF;
    step := mfa.matching_step(p.secret, p.algorithm, p.digits, p.period, code, at,
        least(greatest(skew, 0), 10));
    IF step IS NULL THEN
        IF p.tries_left <= 1 THEN
            DELETE FROM mfa.pending x WHERE x.username = who;
            RETURN QUERY SELECT 'too-many-tries'::text, 0;
        ELSE
            UPDATE mfa.pending x SET tries_left = p.tries_left - 1 WHERE x.username = who;
            RETURN QUERY SELECT 'wrong-code'::text, p.tries_left - 1;
        END IF;
        RETURN;
    END IF;
    -- Replaced in place, never deleted and inserted: a check waiting for
    -- the row's lock would find it gone and read "not enrolled".
    DELETE FROM mfa.address_limit x WHERE x.username = who;
    DELETE FROM mfa.remembered x WHERE x.username = who;
    -- The confirming code is used: it cannot also sign in.
    INSERT INTO mfa.account AS old (username, secret, algorithm, digits, period, enrolled_at,
            last_step, recovery_salt, recovery_hashes)
        VALUES (who, p.secret, p.algorithm, p.digits, p.period, at, step, salt, hashes)
        ON CONFLICT (username) DO UPDATE SET secret = EXCLUDED.secret,
            algorithm = EXCLUDED.algorithm, digits = EXCLUDED.digits, period = EXCLUDED.period,
            enrolled_at = EXCLUDED.enrolled_at, last_step = EXCLUDED.last_step, failures = 0,
            lockouts = 0, locked_until = 0, skew = NULL, max_failures = NULL,
            lockout_seconds = NULL, recovery_salt = EXCLUDED.recovery_salt,
            recovery_hashes = EXCLUDED.recovery_hashes, push_blocked_since = 0;
    DELETE FROM mfa.pending x WHERE x.username = who;
    RETURN QUERY SELECT 'confirmed'::text, 0;
END
$$;

-- Makes a whole account the user's active enrollment (an import, or a
-- host's file store moving in). `addresses`: (address, failures, lockouts,
-- locked_until) rows; `devices`: (key, rhost, service, until) rows, as JSON.
CREATE OR REPLACE FUNCTION mfa.install(
    who text, secret bytea, algorithm text, digits integer, period bigint,
    enrolled_at bigint, last_step bigint, failures integer, lockouts integer,
    locked_until bigint, skew bigint, max_failures bigint, lockout_seconds bigint,
    salt text, hashes text[], push_blocked_since bigint, addresses jsonb, devices jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- In place (see confirm_enrollment).
    DELETE FROM mfa.address_limit x WHERE x.username = who;
    DELETE FROM mfa.remembered x WHERE x.username = who;
    INSERT INTO mfa.account AS old VALUES (who, secret, algorithm, digits, period, enrolled_at,
        last_step, failures, lockouts, locked_until, skew, max_failures, lockout_seconds,
        salt, hashes, push_blocked_since)
        ON CONFLICT (username) DO UPDATE SET secret = EXCLUDED.secret,
            algorithm = EXCLUDED.algorithm, digits = EXCLUDED.digits, period = EXCLUDED.period,
            enrolled_at = EXCLUDED.enrolled_at, last_step = EXCLUDED.last_step,
            failures = EXCLUDED.failures, lockouts = EXCLUDED.lockouts,
            locked_until = EXCLUDED.locked_until, skew = EXCLUDED.skew,
            max_failures = EXCLUDED.max_failures, lockout_seconds = EXCLUDED.lockout_seconds,
            recovery_salt = EXCLUDED.recovery_salt, recovery_hashes = EXCLUDED.recovery_hashes,
            push_blocked_since = EXCLUDED.push_blocked_since;
    INSERT INTO mfa.address_limit
        SELECT who, e->>0, (e->>1)::integer, (e->>2)::integer, (e->>3)::bigint
        FROM jsonb_array_elements(addresses) AS x(e);
    INSERT INTO mfa.remembered (username, key, rhost, service, until)
        SELECT who, e->>0, e->>1, e->>2, (e->>3)::bigint
        FROM jsonb_array_elements(devices) AS x(e);
END
$$;

CREATE OR REPLACE FUNCTION mfa.replace_recovery(who text, salt text, hashes text[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE mfa.account SET recovery_salt = salt, recovery_hashes = hashes WHERE username = who;
    RETURN FOUND;
END
$$;

-- Removes the active and any pending enrollment; false when there was neither.
CREATE OR REPLACE FUNCTION mfa.remove(who text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    had_account boolean;
BEGIN
    DELETE FROM mfa.account WHERE username = who;
    had_account := FOUND;
    DELETE FROM mfa.pending WHERE username = who;
    RETURN had_account OR FOUND;
END
$$;

-- Ends challenge row `c` with `ending` (unless it already ended, or its
-- time is up) and wakes its waiter; returns the outcome it has now.
CREATE OR REPLACE FUNCTION mfa.end_row(c mfa.challenge, ending text, at bigint)
RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ended text := coalesce(c.outcome, CASE WHEN at >= c.expires_at THEN 'expired' END, ending);
BEGIN
    IF c.outcome IS NULL THEN
        UPDATE mfa.challenge SET outcome = ended, ended_at = at WHERE id = c.id;
        -- Only the id: a listener reads the outcome from the table, so a
        -- NOTIFY sent by anyone else can wake a waiter but not decide.
        PERFORM pg_notify('mfa_challenge', c.id);
    END IF;
    RETURN ended;
END
$$;

-- Creator names are D-Bus names, unique on one bus only: a challenge is
-- its creator's on the host (role) that made it.
CREATE OR REPLACE FUNCTION mfa.create_challenge(
    challenge_id text, who text, number integer, context jsonb, ttl bigint,
    requester_session bigint, creator text, test boolean, burst bigint, every bigint)
RETURNS TABLE (refusal text, detail text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    b mfa.push_budget;
    earned bigint;
    waiting text;
BEGIN
    -- Held to the config's ranges ([push] request_burst, request_every_seconds,
    -- timeout_seconds), whatever a host sends.
    every := least(greatest(every, 1), 3600);
    burst := least(greatest(burst, 1), 1000);
    ttl := least(greatest(ttl, 1), 600);
    -- Ended ones are kept 300 s for late readers; a few go per call,
    -- skipping rows others hold.
    DELETE FROM mfa.challenge x WHERE x.id IN (SELECT y.id FROM mfa.challenge y
        WHERE y.ended_at + 300 <= at OR y.expires_at + 300 <= at
        LIMIT 100 FOR UPDATE SKIP LOCKED);
    INSERT INTO mfa.push_budget VALUES (who, burst, at) ON CONFLICT (username) DO NOTHING;
    SELECT * INTO b FROM mfa.push_budget x WHERE x.username = who FOR UPDATE;
    earned := greatest(at - b.counted_at, 0) / every;
    b.available := least(b.available + earned, burst);
    b.counted_at := CASE WHEN b.available >= burst THEN at ELSE b.counted_at + earned * every END;
    IF b.available <= 0 THEN
        UPDATE mfa.push_budget x SET available = b.available, counted_at = b.counted_at
            WHERE x.username = who;
        RETURN QUERY SELECT 'too-many'::text,
            (every - least(greatest(at - b.counted_at, 0), every - 1))::text;
        RETURN;
    END IF;
    UPDATE mfa.push_budget x SET available = b.available - 1, counted_at = b.counted_at
        WHERE x.username = who;
    SELECT x.id INTO waiting FROM mfa.challenge x
        WHERE x.username = who AND x.outcome IS NULL AND x.expires_at > at;
    IF FOUND THEN
        RETURN QUERY SELECT 'pending'::text, waiting;
        RETURN;
    END IF;
    INSERT INTO mfa.challenge VALUES (challenge_id, who, number, context, at, at + ttl,
        session_user, requester_session, creator, test, NULL, NULL);
    -- Every host's mfad tells its approvers of the user (never the number).
    PERFORM pg_notify('mfa_challenge_new', challenge_id);
    RETURN QUERY SELECT NULL::text, NULL::text;
END
$$;

-- A challenge as its functions return it: the creator is the bare D-Bus
-- name on the host that made it, "host/name" elsewhere.
CREATE OR REPLACE FUNCTION mfa.shown(c mfa.challenge, ended text)
RETURNS TABLE (outcome text, id text, who text, number integer, context jsonb,
    created_at bigint, expires_at bigint, requester_session bigint, creator text, test boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ended, c.id, c.username, c.number, c.context, c.created_at, c.expires_at,
        CASE WHEN c.host = session_user THEN c.requester_session END,
        CASE WHEN c.host = session_user THEN c.creator ELSE c.host || '/' || c.creator END,
        c.test
$$;

-- A refusal as answer_challenge and end_challenge return it: nothing of
-- the challenge (its number least), only its outcome once it has ended.
CREATE OR REPLACE FUNCTION mfa.refused(refusal text, ended text)
RETURNS TABLE (refused text, outcome text, id text, who_ text, number integer,
    context jsonb, created_at bigint, expires_at bigint, requester_session bigint,
    creator text, test boolean)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT refusal, ended, NULL::text, NULL::text, NULL::integer, NULL::jsonb, NULL::bigint,
        NULL::bigint, NULL::bigint, NULL::text, NULL::boolean
$$;

-- Lets the creator wait: the expiry time, and the outcome if it has ended.
-- No row: no such challenge of this creator.
CREATE OR REPLACE FUNCTION mfa.watch_challenge(challenge_id text, creator text)
RETURNS TABLE (expires bigint, ended text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.expires_at, c.outcome FROM mfa.challenge c
    WHERE c.id = challenge_id AND c.host = session_user AND c.creator = watch_challenge.creator
$$;

-- A pending challenge as its approvers are told of it: whose, its
-- context, seconds left, and whether this host (role) made it. No row:
-- not pending.
CREATE OR REPLACE FUNCTION mfa.announced(challenge_id text)
RETURNS TABLE (who text, context jsonb, seconds_left bigint, here boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.username, c.context, c.expires_at - mfa.now(), c.host = session_user
    FROM mfa.challenge c
    WHERE c.id = challenge_id AND c.outcome IS NULL AND c.expires_at > mfa.now()
$$;

-- The outcome of a challenge (NULL while it is pending or unknown).
CREATE OR REPLACE FUNCTION mfa.challenge_outcome(challenge_id text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT c.outcome FROM mfa.challenge c WHERE c.id = challenge_id $$;

-- The outcome now, ending the challenge as expired if its time is up.
CREATE OR REPLACE FUNCTION mfa.settle_challenge(challenge_id text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    c mfa.challenge;
BEGIN
    SELECT * INTO c FROM mfa.challenge x WHERE x.id = challenge_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'cancelled';
    END IF;
    IF c.outcome IS NULL AND at < c.expires_at THEN
        RETURN 'pending';
    END IF;
    RETURN mfa.end_row(c, 'expired', at);
END
$$;

-- An approver of `who` answers with `answer`: refusal 'unknown', 'ended'
-- (with the outcome), 'same-session' or 'not-verified', or no refusal and
-- the outcome. `rule`: 'mfa', 'different' or 'any'. Audit sessions are a
-- host's own: one on another host is always another session.
CREATE OR REPLACE FUNCTION mfa.answer_challenge(
    challenge_id text, who text, answer integer, approver_session bigint,
    verified boolean, rule text)
RETURNS TABLE (refusal text, outcome text, id text, who_ text, number integer,
    context jsonb, created_at bigint, expires_at bigint, requester_session bigint,
    creator text, test boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    c mfa.challenge;
    ended text;
BEGIN
    IF rule IS NULL OR rule NOT IN ('mfa', 'different', 'any') OR answer IS NULL THEN
        RAISE EXCEPTION 'answer_challenge: rule is mfa, different or any; answer is a number';
    END IF;
    SELECT * INTO c FROM mfa.challenge x WHERE x.id = challenge_id FOR UPDATE;
    IF NOT FOUND OR c.username IS DISTINCT FROM who THEN
        RETURN QUERY SELECT * FROM mfa.refused('unknown', NULL);
        RETURN;
    END IF;
    IF c.outcome IS NOT NULL OR at >= c.expires_at THEN
        ended := mfa.end_row(c, 'expired', at);
        RETURN QUERY SELECT * FROM mfa.refused('ended', ended);
        RETURN;
    END IF;
    -- A refused approver learns nothing of the challenge (its number least).
    IF NOT c.test AND rule <> 'any' THEN
        IF approver_session IS NULL OR (c.host = session_user
                AND c.requester_session IS NOT DISTINCT FROM approver_session) THEN
            RETURN QUERY SELECT * FROM mfa.refused('same-session', NULL);
            RETURN;
        END IF;
        IF rule = 'mfa' AND verified IS NOT TRUE THEN
            RETURN QUERY SELECT * FROM mfa.refused('not-verified', NULL);
            RETURN;
        END IF;
    END IF;
    ended := mfa.end_row(c, CASE WHEN answer = c.number THEN 'approved' ELSE 'wrong-number' END, at);
    RETURN QUERY SELECT NULL::text, s.* FROM mfa.shown(c, ended) s;
END
$$;

-- Ends a pending challenge with `ending` if `kind` ('creator', 'user' or
-- 'reporter') `by` may: refusal 'unknown' or 'ended', or none.
CREATE OR REPLACE FUNCTION mfa.end_challenge(
    challenge_id text, ending text, kind text, ender text)
RETURNS TABLE (refusal text, outcome text, id text, who_ text, number integer,
    context jsonb, created_at bigint, expires_at bigint, requester_session bigint,
    creator text, test boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    c mfa.challenge;
    ended text;
    may boolean;
    allowed text;
BEGIN
    -- Who ends decides how, never the caller: a creator cancels, the
    -- user's approver denies (or reports). Nobody approves here.
    allowed := CASE kind WHEN 'creator' THEN 'cancelled' WHEN 'user' THEN 'denied'
        WHEN 'reporter' THEN 'denied' END;
    IF allowed IS NULL OR ending IS DISTINCT FROM allowed THEN
        RAISE EXCEPTION 'end_challenge: a creator cancels, an approver denies';
    END IF;
    SELECT * INTO c FROM mfa.challenge x WHERE x.id = challenge_id FOR UPDATE;
    may := FOUND AND CASE kind
            WHEN 'creator' THEN c.host = session_user AND c.creator = ender
            WHEN 'user' THEN c.username = ender
            WHEN 'reporter' THEN c.username = ender AND NOT c.test
            ELSE false END;
    IF may IS NOT TRUE THEN
        RETURN QUERY SELECT * FROM mfa.refused('unknown', NULL);
        RETURN;
    END IF;
    IF c.outcome IS NOT NULL OR at >= c.expires_at THEN
        ended := mfa.end_row(c, 'expired', at);
        RETURN QUERY SELECT * FROM mfa.refused('ended', ended);
        RETURN;
    END IF;
    ended := mfa.end_row(c, ending, at);
    RETURN QUERY SELECT NULL::text, s.* FROM mfa.shown(c, ended) s;
END
$$;

-- The pending challenges of `who` (NULL: of everyone): id, context, seconds left.
CREATE OR REPLACE FUNCTION mfa.pending_challenges(who text)
RETURNS TABLE (id text, context jsonb, seconds_left bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.id, c.context, c.expires_at - mfa.now() FROM mfa.challenge c
    WHERE (who IS NULL OR c.username = who) AND c.outcome IS NULL AND c.expires_at > mfa.now()
    ORDER BY c.created_at, c.id
$$;

-- The requester `creator` on this host is gone: its pending challenges
-- end as cancelled. Returns their ids.
CREATE OR REPLACE FUNCTION mfa.cancel_challenges_of(creator text)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    c mfa.challenge;
BEGIN
    FOR c IN SELECT * FROM mfa.challenge x WHERE x.host = session_user
            AND x.creator = cancel_challenges_of.creator AND x.outcome IS NULL
            AND x.expires_at > at FOR UPDATE LOOP
        PERFORM mfa.end_row(c, 'cancelled', at);
        RETURN NEXT c.id;
    END LOOP;
END
$$;

-- Who owns what, who may call what. Hosts: the functions above that a
-- host's mfad calls, nothing else (no table, no helper, no pgcrypto).
ALTER FUNCTION mfa.now() OWNER TO mfa_owner;
ALTER FUNCTION mfa.matching_step(bytea, text, integer, bigint, text, bigint, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.after_failure(integer, integer, bigint, bigint, bigint, bigint, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.end_row(mfa.challenge, text, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.shown(mfa.challenge, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.refused(text, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.verify(text, text, text, text, text, text, text, bigint, bigint, bigint, bigint, bigint, text, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.summary(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.users() OWNER TO mfa_owner;
ALTER FUNCTION mfa.is_remembered(text, text, text, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.forget_devices(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.set_push_blocked(text, boolean) OWNER TO mfa_owner;
ALTER FUNCTION mfa.begin_enrollment(text, text, integer, bigint, integer, bigint, integer) OWNER TO mfa_owner;
ALTER FUNCTION mfa.has_pending(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.confirm_enrollment(text, text, bigint, text, text[]) OWNER TO mfa_owner;
ALTER FUNCTION mfa.install(text, bytea, text, integer, bigint, bigint, bigint, integer, integer, bigint, bigint, bigint, bigint, text, text[], bigint, jsonb, jsonb) OWNER TO mfa_owner;
ALTER FUNCTION mfa.replace_recovery(text, text, text[]) OWNER TO mfa_owner;
ALTER FUNCTION mfa.remove(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.create_challenge(text, text, integer, jsonb, bigint, bigint, text, boolean, bigint, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.watch_challenge(text, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.challenge_outcome(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.announced(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.settle_challenge(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.answer_challenge(text, text, integer, bigint, boolean, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.end_challenge(text, text, text, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.pending_challenges(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.cancel_challenges_of(text) OWNER TO mfa_owner;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA mfa FROM PUBLIC;
-- And for functions later versions make: nobody but whom they grant.
ALTER DEFAULT PRIVILEGES IN SCHEMA mfa REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE mfa_owner IN SCHEMA mfa REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    mfa.verify(text, text, text, text, text, text, text, bigint, bigint, bigint, bigint, bigint, text, text),
    mfa.summary(text),
    mfa.users(),
    mfa.is_remembered(text, text, text, text),
    mfa.forget_devices(text),
    mfa.set_push_blocked(text, boolean),
    mfa.begin_enrollment(text, text, integer, bigint, integer, bigint, integer),
    mfa.has_pending(text),
    mfa.confirm_enrollment(text, text, bigint, text, text[]),
    mfa.install(text, bytea, text, integer, bigint, bigint, bigint, integer, integer, bigint, bigint, bigint, bigint, text, text[], bigint, jsonb, jsonb),
    mfa.replace_recovery(text, text, text[]),
    mfa.remove(text),
    mfa.create_challenge(text, text, integer, jsonb, bigint, bigint, text, boolean, bigint, bigint),
    mfa.watch_challenge(text, text),
    mfa.challenge_outcome(text),
    mfa.announced(text),
    mfa.settle_challenge(text),
    mfa.answer_challenge(text, text, integer, bigint, boolean, text),
    mfa.end_challenge(text, text, text, text),
    mfa.pending_challenges(text),
    mfa.cancel_challenges_of(text)
TO mfa_host;
