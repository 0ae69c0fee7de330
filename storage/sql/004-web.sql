-- pam-mfa fleet store, version 4: the web approver of a fleet.
--
-- mfa-web faces the network, so its role (a member of mfa_web) may do
-- less than a host: list a user's pending requests (never their numbers),
-- read the public keys of phones, and answer a request only with one of
-- its user's phones, whose counter must advance in the same transaction.
-- The passkey signature mfa-web checked is kept with the answer
-- (mfa.phone_answer), as evidence anyone can check again.
--
-- Adding a phone: a host opens a one-time link for its mfa-enroll; the web
-- approver registers a phone on it, which makes the phone's test request
-- here (its number drawn here, read back only by the link's host and
-- creator); the phone is kept by the transaction that approves that
-- request with that phone, and by nothing else.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mfa_web') THEN
        CREATE ROLE mfa_web NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA mfa TO mfa_web;

-- A link of `mfa-enroll --add-phone`, by the SHA-256 of its token; once a
-- phone used it: that phone, not yet active, and its test request.
CREATE TABLE IF NOT EXISTS mfa.phone_link (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    username text NOT NULL REFERENCES mfa.account (username) ON DELETE CASCADE,
    host text NOT NULL,
    creator text NOT NULL,
    expires_at bigint NOT NULL,
    credential_id bytea CHECK (length(credential_id) BETWEEN 1 AND 1023),
    public_key bytea CHECK (length(public_key) = 65),
    name text CHECK (length(name) <= 200),
    challenge_id text UNIQUE
);
CREATE INDEX IF NOT EXISTS phone_link_username ON mfa.phone_link (username);

-- Every answer a phone gave, with the signature it was given for.
CREATE TABLE IF NOT EXISTS mfa.phone_answer (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    web text NOT NULL DEFAULT session_user,
    challenge_id text NOT NULL,
    username text NOT NULL,
    requested_by text NOT NULL,
    context jsonb NOT NULL,
    outcome text NOT NULL,
    credential_id bytea NOT NULL,
    signed_challenge bytea NOT NULL,
    authenticator_data bytea NOT NULL,
    client_data bytea NOT NULL,
    signature bytea NOT NULL
);

-- One answer per request (a request ends once); the host finds it by id.
CREATE UNIQUE INDEX IF NOT EXISTS phone_answer_challenge ON mfa.phone_answer (challenge_id);

ALTER TABLE mfa.phone_link OWNER TO mfa_owner;
ALTER TABLE mfa.phone_answer OWNER TO mfa_owner;
REVOKE ALL ON mfa.phone_link, mfa.phone_answer FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA mfa FROM PUBLIC;

-- Enrolling again (a new secret confirmed, or installed) starts over, as
-- it forgets remembered devices: the old enrollment's phones and links go.
CREATE OR REPLACE FUNCTION mfa.forget_phones() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Links first: a test being approved holds its link's row, so this
    -- waits for it, and the phones' delete then sees the phone it kept.
    DELETE FROM mfa.phone_link l WHERE l.username = NEW.username;
    DELETE FROM mfa.phone p WHERE p.username = NEW.username;
    RETURN NEW;
END
$$;
ALTER FUNCTION mfa.forget_phones() OWNER TO mfa_owner;
REVOKE EXECUTE ON FUNCTION mfa.forget_phones() FROM PUBLIC;
DROP TRIGGER IF EXISTS enrolled_again ON mfa.account;
CREATE TRIGGER enrolled_again AFTER UPDATE OF secret, enrolled_at ON mfa.account
    FOR EACH ROW WHEN (OLD.secret IS DISTINCT FROM NEW.secret
                       OR OLD.enrolled_at IS DISTINCT FROM NEW.enrolled_at)
    EXECUTE FUNCTION mfa.forget_phones();

-- Host: opens a link of `who` for `creator` (a D-Bus name on this host),
-- ending the user's older links that no phone used. False: not enrolled.
CREATE OR REPLACE FUNCTION mfa.open_link(hash bytea, who text, creator text, ttl bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
BEGIN
    PERFORM 1 FROM mfa.account WHERE username = who FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM mfa.phone_link l
        WHERE (l.username = who AND l.challenge_id IS NULL) OR l.expires_at <= at;
    INSERT INTO mfa.phone_link (token_hash, username, host, creator, expires_at)
    VALUES (hash, who, session_user, creator, at + least(greatest(ttl, 1), 1800));
    RETURN true;
END
$$;

-- Host: the link's test request once a phone used it: (id, number,
-- seconds to answer, phone name); NULLs while unused. No row: no such
-- link of this creator on this host.
CREATE OR REPLACE FUNCTION mfa.link_state(hash bytea, creator text)
RETURNS TABLE (challenge_id text, number integer, seconds bigint, name text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.challenge_id, c.number, c.expires_at - c.created_at, l.name
    FROM mfa.phone_link l LEFT JOIN mfa.challenge c ON c.id = l.challenge_id
    WHERE l.token_hash = hash AND l.host = session_user AND l.creator = link_state.creator
      AND l.expires_at > mfa.now() AND (l.challenge_id IS NULL OR c.id IS NOT NULL)
$$;

-- Host: whether a request is a phone's test, which only that phone answers.
CREATE OR REPLACE FUNCTION mfa.is_phone_test(challenge_id text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT FROM mfa.phone_link l WHERE l.challenge_id = is_phone_test.challenge_id) $$;

-- Web: the user of an open, unused link, and the passkeys that user has.
CREATE OR REPLACE FUNCTION mfa.link_user(hash bytea)
RETURNS TABLE (who text, credential_ids bytea[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.username, ARRAY(SELECT p.credential_id FROM mfa.phone p
                             WHERE p.username = l.username ORDER BY p.added_at)
    FROM mfa.phone_link l
    WHERE l.token_hash = hash AND l.credential_id IS NULL AND l.expires_at > mfa.now()
$$;

-- Web: a phone made a passkey through the link: it waits for its test
-- request, made here. Refusal 'bad-link', 'registered' or 'too-many'; or
-- (user, request id, seconds to answer).
CREATE OR REPLACE FUNCTION mfa.link_phone(hash bytea, cred bytea, key bytea, label text, ttl bigint)
RETURNS TABLE (refusal text, who text, challenge_id text, seconds bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    l mfa.phone_link;
    drawn integer;
    id text := encode(mfa.gen_random_bytes(16), 'hex');
BEGIN
    IF hash IS NULL OR cred IS NULL OR key IS NULL OR label IS NULL OR ttl IS NULL THEN
        RAISE EXCEPTION 'link_phone: every argument is needed';
    END IF;
    ttl := least(greatest(ttl, 1), 600);
    SELECT * INTO l FROM mfa.phone_link x WHERE x.token_hash = hash FOR UPDATE;
    IF NOT FOUND OR l.credential_id IS NOT NULL OR l.expires_at <= at THEN
        RETURN QUERY SELECT 'bad-link'::text, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM mfa.phone p WHERE p.credential_id = cred)
            OR EXISTS (SELECT FROM mfa.phone_link x WHERE x.credential_id = cred) THEN
        RETURN QUERY SELECT 'registered'::text, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF (SELECT count(*) FROM mfa.phone p WHERE p.username = l.username) >= 10 THEN
        RETURN QUERY SELECT 'too-many'::text, NULL::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    -- 10 to 99, uniformly: bytes of 180 and up are drawn again.
    LOOP
        drawn := get_byte(mfa.gen_random_bytes(1), 0);
        EXIT WHEN drawn < 180;
    END LOOP;
    INSERT INTO mfa.challenge VALUES (id, l.username, 10 + drawn % 90,
        jsonb_build_object('service', 'mfa-enroll --add-phone'), at, at + ttl,
        l.host, NULL, l.creator, true, NULL, NULL);
    UPDATE mfa.phone_link x SET credential_id = cred, public_key = key, name = label,
        challenge_id = id, expires_at = greatest(x.expires_at, at + ttl)
    WHERE x.token_hash = hash;
    PERFORM pg_notify('mfa_challenge_new', id);
    RETURN QUERY SELECT NULL::text, l.username, id, ttl;
END
$$;

-- Web: the phone `cred` of `who` that may answer `challenge_id`: an active
-- one (not for a phone's test), or the phone waiting for this very test.
CREATE OR REPLACE FUNCTION mfa.answering_phone(who text, cred bytea, challenge_id text)
RETURNS TABLE (public_key bytea, name text, added_at bigint, sign_count bigint,
               last_used bigint, active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.public_key, p.name, p.added_at, p.sign_count, p.last_used, true
    FROM mfa.phone p
    WHERE p.username = who AND p.credential_id = cred
      AND NOT EXISTS (SELECT FROM mfa.phone_link l WHERE l.challenge_id = answering_phone.challenge_id)
    UNION ALL
    SELECT l.public_key, l.name, 0::bigint, 0::bigint, 0::bigint, false
    FROM mfa.phone_link l
    WHERE l.username = who AND l.credential_id = cred AND l.challenge_id = answering_phone.challenge_id
$$;

-- Web: who a request is of (to tell that user's open pages), if pending
-- or ended in the last minutes.
CREATE OR REPLACE FUNCTION mfa.request_user(challenge_id text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT c.username FROM mfa.challenge c WHERE c.id = request_user.challenge_id $$;

-- Web: phone `cred` of `who` answers request `challenge_id` with `answer`,
-- its passkey's counter now `counter`, having signed `signed` (checked by
-- the web approver; kept here with what it signed). Refusal 'unknown'
-- (no such request of this user), 'ended' (with the outcome),
-- 'unknown-phone' or 'counter-went-back'; or the outcome, and whether it
-- was a phone's test. A test approved keeps its phone, in this transaction.
CREATE OR REPLACE FUNCTION mfa.phone_answer(
    challenge_id text, who text, answer integer, cred bytea, counter bigint,
    signed bytea, authenticator_data bytea, client_data bytea, signature bytea)
RETURNS TABLE (refusal text, outcome text, test boolean, context jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    c mfa.challenge;
    l mfa.phone_link;
    testing boolean;
    ended text;
BEGIN
    IF answer IS NULL OR cred IS NULL OR counter IS NULL OR signed IS NULL
            OR authenticator_data IS NULL OR client_data IS NULL OR signature IS NULL THEN
        RAISE EXCEPTION 'phone_answer: every argument is needed';
    END IF;
    IF counter < 0 OR counter > 4294967295 THEN
        RAISE EXCEPTION 'phone_answer: a passkey counter is 32 bits';
    END IF;
    SELECT * INTO c FROM mfa.challenge x WHERE x.id = phone_answer.challenge_id FOR UPDATE;
    IF NOT FOUND OR c.username IS DISTINCT FROM who THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::text, NULL::boolean, NULL::jsonb;
        RETURN;
    END IF;
    IF c.outcome IS NOT NULL OR at >= c.expires_at THEN
        ended := mfa.end_row(c, 'expired', at);
        RETURN QUERY SELECT 'ended'::text, ended, NULL::boolean, NULL::jsonb;
        RETURN;
    END IF;
    testing := EXISTS (SELECT FROM mfa.phone_link x WHERE x.challenge_id = c.id);
    IF testing THEN
        -- A phone's test: that new phone alone answers it, and it is kept
        -- only as a new phone of an enrolled user with room for it. The
        -- account's row first, then the link's, as enrolling again takes
        -- them: the two wait for each other, never the other way round.
        PERFORM 1 FROM mfa.account a WHERE a.username = who FOR UPDATE;
        SELECT * INTO l FROM mfa.phone_link x WHERE x.challenge_id = c.id FOR UPDATE;
        IF NOT FOUND OR l.credential_id IS DISTINCT FROM cred
                OR EXISTS (SELECT FROM mfa.phone p WHERE p.credential_id = cred)
                OR (SELECT count(*) FROM mfa.phone p WHERE p.username = who) >= 10 THEN
            RETURN QUERY SELECT 'unknown-phone'::text, NULL::text, NULL::boolean, NULL::jsonb;
            RETURN;
        END IF;
    ELSE
        UPDATE mfa.phone p SET sign_count = counter, last_used = at
        WHERE p.credential_id = cred AND p.username = who
          AND ((p.sign_count = 0 AND counter = 0) OR counter > p.sign_count);
        IF NOT FOUND THEN
            RETURN QUERY SELECT CASE WHEN EXISTS (SELECT FROM mfa.phone p
                    WHERE p.credential_id = cred AND p.username = who)
                THEN 'counter-went-back' ELSE 'unknown-phone' END, NULL::text,
                NULL::boolean, NULL::jsonb;
            RETURN;
        END IF;
    END IF;
    ended := mfa.end_row(c, CASE WHEN answer = c.number THEN 'approved' ELSE 'wrong-number' END, at);
    IF testing THEN
        DELETE FROM mfa.phone_link x WHERE x.token_hash = l.token_hash;
        IF ended = 'approved' THEN
            INSERT INTO mfa.phone (credential_id, username, public_key, name, added_at,
                sign_count, last_used)
            VALUES (cred, who, l.public_key, l.name, at, counter, at);
        END IF;
    END IF;
    INSERT INTO mfa.phone_answer (challenge_id, username, requested_by, context, outcome,
        credential_id, signed_challenge, authenticator_data, client_data, signature)
    VALUES (c.id, who, c.host, c.context, ended, cred, signed, authenticator_data,
        client_data, signature);
    INSERT INTO mfa.audit (username, service, rhost, result)
    VALUES (who, coalesce(c.context->>'service', ''), coalesce(c.context->>'rhost', ''),
        'phone-' || ended);
    RETURN QUERY SELECT NULL::text, ended, c.test, c.context;
END
$$;

-- Web: the phone's "Deny", or with `report` its "This was not me", which
-- also blocks the user's push requests until a code login or an
-- administrator clears it. Refusal 'unknown' or 'ended'; or the outcome
-- and the request's context.
CREATE OR REPLACE FUNCTION mfa.phone_deny(challenge_id text, who text, report boolean)
RETURNS TABLE (refusal text, outcome text, context jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    at bigint := mfa.now();
    c mfa.challenge;
    ended text;
BEGIN
    SELECT * INTO c FROM mfa.challenge x WHERE x.id = phone_deny.challenge_id FOR UPDATE;
    IF NOT FOUND OR c.username IS DISTINCT FROM who OR (report AND c.test) THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::text, NULL::jsonb;
        RETURN;
    END IF;
    IF c.outcome IS NOT NULL OR at >= c.expires_at THEN
        ended := mfa.end_row(c, 'expired', at);
        RETURN QUERY SELECT 'ended'::text, ended, NULL::jsonb;
        RETURN;
    END IF;
    ended := mfa.end_row(c, 'denied', at);
    DELETE FROM mfa.phone_link x WHERE x.challenge_id = c.id;
    IF report THEN
        UPDATE mfa.account a SET push_blocked_since = at WHERE a.username = who;
    END IF;
    INSERT INTO mfa.audit (username, service, rhost, result)
    VALUES (who, coalesce(c.context->>'service', ''), coalesce(c.context->>'rhost', ''),
        CASE WHEN report THEN 'phone-reported' ELSE 'phone-denied' END);
    RETURN QUERY SELECT NULL::text, ended, c.context;
END
$$;

-- Host: the phone's signature that approved a request this host made,
-- with the phone's key, the number and what the request asked: the host
-- checks it again before it lets anyone in, so a web approver that lies
-- about a signature approves nothing. No row: no phone approved it.
CREATE OR REPLACE FUNCTION mfa.phone_evidence(challenge_id text)
RETURNS TABLE (credential_id bytea, public_key bytea, authenticator_data bytea,
               client_data bytea, signature bytea, number integer, context jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.credential_id, p.public_key, a.authenticator_data, a.client_data, a.signature,
        c.number, c.context
    FROM mfa.phone_answer a
    JOIN mfa.challenge c ON c.id = a.challenge_id
    LEFT JOIN mfa.phone p ON p.credential_id = a.credential_id AND p.username = a.username
    WHERE a.challenge_id = phone_evidence.challenge_id AND a.outcome = 'approved'
      AND c.host = session_user
$$;

ALTER FUNCTION mfa.open_link(bytea, text, text, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.link_state(bytea, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.is_phone_test(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.link_user(bytea) OWNER TO mfa_owner;
ALTER FUNCTION mfa.link_phone(bytea, bytea, bytea, text, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.answering_phone(text, bytea, text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.request_user(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.phone_answer(text, text, integer, bytea, bigint, bytea, bytea, bytea, bytea) OWNER TO mfa_owner;
ALTER FUNCTION mfa.phone_deny(text, text, boolean) OWNER TO mfa_owner;
ALTER FUNCTION mfa.phone_evidence(text) OWNER TO mfa_owner;
REVOKE EXECUTE ON FUNCTION
    mfa.open_link(bytea, text, text, bigint), mfa.link_state(bytea, text),
    mfa.is_phone_test(text), mfa.link_user(bytea),
    mfa.link_phone(bytea, bytea, bytea, text, bigint),
    mfa.answering_phone(text, bytea, text), mfa.request_user(text),
    mfa.phone_answer(text, text, integer, bytea, bigint, bytea, bytea, bytea, bytea),
    mfa.phone_deny(text, text, boolean), mfa.phone_evidence(text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    mfa.open_link(bytea, text, text, bigint), mfa.link_state(bytea, text),
    mfa.is_phone_test(text), mfa.phone_evidence(text)
TO mfa_host;
-- The web approver: its own functions, and of the hosts' only those that
-- read (a user's pending requests, without numbers; phones' public keys).
GRANT EXECUTE ON FUNCTION
    mfa.link_user(bytea), mfa.link_phone(bytea, bytea, bytea, text, bigint),
    mfa.answering_phone(text, bytea, text), mfa.request_user(text),
    mfa.phone_answer(text, text, integer, bytea, bigint, bytea, bytea, bytea, bytea),
    mfa.phone_deny(text, text, boolean),
    mfa.pending_challenges(text), mfa.phones(text), mfa.phone_owner(bytea),
    mfa.phone_used(text, bytea, bigint)
TO mfa_web;
