-- pam-mfa's database, version 1: the TOTP code of RFC 6238, computed
-- inside PostgreSQL (pgcrypto's hmac) so that a fleet's hosts can have
-- codes checked without ever reading a secret. Applied by pam-mfa's own
-- schema command, never by hand; every statement may run again.

CREATE SCHEMA IF NOT EXISTS mfa;
-- pgcrypto in our own schema: the functions below name it, and their
-- search_path holds nothing a login role could create objects in.
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA mfa;

-- The code of `secret` for the time step that holds unix time `at`
-- (RFC 6238: HOTP of the step, RFC 4226 dynamic truncation), as text of
-- `digits` digits. `algorithm`: 'SHA1', 'SHA256' or 'SHA512'.
CREATE OR REPLACE FUNCTION mfa.totp_code(
    secret bytea, algorithm text, digits integer, period bigint, at bigint)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog
AS $$
DECLARE
    mac bytea;
    pos integer;
    bin bigint;
BEGIN
    IF digits NOT BETWEEN 6 AND 8 OR period < 1 OR at < 0 THEN
        RAISE EXCEPTION 'totp_code: digits 6 to 8, period >= 1, at >= 0';
    END IF;
    mac := mfa.hmac(int8send(at / period), secret, lower(algorithm));
    pos := get_byte(mac, length(mac) - 1) & 15;
    bin := ((get_byte(mac, pos) & 127)::bigint << 24)
         | (get_byte(mac, pos + 1)::bigint << 16)
         | (get_byte(mac, pos + 2)::bigint << 8)
         | get_byte(mac, pos + 3)::bigint;
    RETURN lpad((bin % (10::bigint ^ digits::bigint)::bigint)::text, digits, '0');
END
$$;
