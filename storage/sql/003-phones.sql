-- pam-mfa fleet store, version 3: phones (passkeys) that approve requests.
-- A phone's public key is not a secret, but who may approve is: hosts
-- reach the table only through these functions, like the rest.

CREATE TABLE IF NOT EXISTS mfa.phone (
    credential_id bytea PRIMARY KEY CHECK (length(credential_id) BETWEEN 1 AND 1023),
    username text NOT NULL REFERENCES mfa.account (username) ON DELETE CASCADE,
    public_key bytea NOT NULL CHECK (length(public_key) = 65),
    name text NOT NULL CHECK (length(name) <= 200),
    added_at bigint NOT NULL,
    sign_count bigint NOT NULL DEFAULT 0,
    last_used bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS phone_username ON mfa.phone (username);
ALTER TABLE mfa.phone OWNER TO mfa_owner;
REVOKE ALL ON mfa.phone FROM PUBLIC;

CREATE OR REPLACE FUNCTION mfa.phones(who text)
RETURNS TABLE (credential_id bytea, public_key bytea, name text, added_at bigint,
               sign_count bigint, last_used bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.credential_id, p.public_key, p.name, p.added_at, p.sign_count, p.last_used
    FROM mfa.phone p WHERE p.username = who ORDER BY p.added_at, p.credential_id
$$;

-- Registers a phone of an enrolled user (false: not enrolled); the same
-- passkey registered again replaces its row, for its own user only.
CREATE OR REPLACE FUNCTION mfa.add_phone(who text, cred bytea, key bytea, label text, at bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM 1 FROM mfa.account WHERE username = who FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM mfa.phone WHERE credential_id = cred AND username = who;
    INSERT INTO mfa.phone (credential_id, username, public_key, name, added_at)
    VALUES (cred, who, key, label, at);
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION mfa.remove_phone(who text, cred bytea) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mfa.phone WHERE credential_id = cred AND username = who;
    RETURN FOUND;
END
$$;

-- Keeps a checked use: the counter must advance (both 0: a passkey that
-- keeps none). The row lock makes racing uses of one signature count once.
CREATE OR REPLACE FUNCTION mfa.phone_used(who text, cred bytea, counter bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE mfa.phone SET sign_count = counter, last_used = mfa.now()
    WHERE credential_id = cred AND username = who
      AND ((sign_count = 0 AND counter = 0) OR counter > sign_count);
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION mfa.phone_owner(cred bytea) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT username FROM mfa.phone WHERE credential_id = cred
$$;

ALTER FUNCTION mfa.phones(text) OWNER TO mfa_owner;
ALTER FUNCTION mfa.add_phone(text, bytea, bytea, text, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.remove_phone(text, bytea) OWNER TO mfa_owner;
ALTER FUNCTION mfa.phone_used(text, bytea, bigint) OWNER TO mfa_owner;
ALTER FUNCTION mfa.phone_owner(bytea) OWNER TO mfa_owner;
REVOKE EXECUTE ON FUNCTION
    mfa.phones(text), mfa.add_phone(text, bytea, bytea, text, bigint),
    mfa.remove_phone(text, bytea), mfa.phone_used(text, bytea, bigint), mfa.phone_owner(bytea)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    mfa.phones(text), mfa.add_phone(text, bytea, bytea, text, bigint),
    mfa.remove_phone(text, bytea), mfa.phone_used(text, bytea, bigint), mfa.phone_owner(bytea)
TO mfa_host;
