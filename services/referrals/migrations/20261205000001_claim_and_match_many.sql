-- CreateReferral's first step for several creates written in one transaction (the
-- service's group commit, `intake.rs`); a single create is a batch of one. Replaces the
-- one-referral function of the previous migration.
--
-- Per item (1-based, in array order): claims the request id; for the items whose claim
-- is new, takes the identity locks, then finds the children already known in the area
-- and the adults of the family the first of them belongs to. A plpgsql function because
-- the lookups must run after the locks are held: each statement in it takes a fresh
-- snapshot, so a referral for the same child committed while this one waited for its
-- lock is seen.
--
-- Returns, tagged with the item:
--   `new`      the request id was claimed now: go ahead;
--   `claimed`  the id was used before (that call's method, hash and referral);
--   `child`    a known child matching child `child` (1-based) of the item: the earliest
--              known member, by NHS number first, else by name, date of birth and
--              postcode, never across two different NHS numbers;
--   `adult`    an adult of the family of the item's first matched child.
--
-- Callers must not put one request id, or two items sharing a lock key, in one call
-- (intake.rs puts them in successive transactions): each item's lookups see only what
-- other transactions committed.
DROP FUNCTION referrals.claim_and_match(text, uuid, text, bytea, uuid, text[], text, text, text[], text[], date[]);

CREATE FUNCTION referrals.claim_and_match(
    p_method      text,
    -- one element per item
    p_org         text[],
    p_request_id  uuid[],
    p_hash        bytea[],
    p_referral_id uuid[],
    p_area        text[],
    p_postcode    text[],
    -- one element per identity lock key, with the item it belongs to
    p_lock_item   int[],
    p_lock_key    text[],
    -- one element per child, with its item and its 1-based position there
    p_child_item  int[],
    p_child_pos   int[],
    p_nhs         text[],
    p_name_key    text[],
    p_dob         date[]
) RETURNS TABLE (
    what         text,
    item         int,
    child        int,
    member_id    uuid,
    family_id    uuid,
    by_nhs       boolean,
    name_key     text,
    role         text,
    method       text,
    request_hash bytea,
    referral_id  uuid
) LANGUAGE plpgsql VOLATILE
-- Each statement is planned once per session and the plan kept (no planning per call).
-- A kept plan must stay right as the tables grow from empty: every lookup below is
-- driven from the (small) input, each a nested loop into an index, never a scan of a
-- table that was small when the plan was made.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    fresh int[];
BEGIN
    -- Claimed in key order, so two transactions claiming the same ids cannot deadlock.
    WITH items AS (
        SELECT * FROM unnest(p_org, p_request_id, p_hash, p_referral_id)
                      WITH ORDINALITY AS i(org, request_id, hash, referral_id, n)
    ), claimed AS (
        INSERT INTO referrals.requests (organisation, request_id, method, request_hash, referral_id)
        SELECT org, request_id, p_method, hash, referral_id FROM items ORDER BY org, request_id
        ON CONFLICT DO NOTHING
        RETURNING organisation, request_id
    )
    SELECT coalesce(array_agg(i.n::int), '{}') INTO fresh
      FROM items i JOIN claimed c ON c.organisation = i.org AND c.request_id = i.request_id;

    RETURN QUERY
    SELECT 'new', n, NULL::int, NULL::uuid, NULL::uuid, NULL::boolean, NULL::text, NULL::text,
           NULL::text, NULL::bytea, NULL::uuid
      FROM unnest(fresh) AS n
    UNION ALL
    SELECT 'claimed', i.n::int, NULL::int, NULL::uuid, NULL::uuid, NULL::boolean, NULL::text, NULL::text,
           q.method, q.request_hash, q.referral_id
      FROM unnest(p_org, p_request_id) WITH ORDINALITY AS i(org, request_id, n)
      CROSS JOIN LATERAL (
          SELECT r.method, r.request_hash, r.referral_id FROM referrals.requests r
           WHERE r.organisation = i.org AND r.request_id = i.request_id
           LIMIT 1
      ) q
     WHERE NOT (i.n = ANY (fresh));

    IF cardinality(fresh) = 0 THEN
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended(k, 0))
       FROM (SELECT DISTINCT l.k FROM unnest(p_lock_item, p_lock_key) AS l(n, k) WHERE l.n = ANY (fresh)) keys
      ORDER BY k;

    RETURN QUERY
    WITH kids AS (
        SELECT c.n, c.pos, c.nhs, c.name_key, c.dob, p_area[c.n] AS area, p_postcode[c.n] AS postcode
          FROM unnest(p_child_item, p_child_pos, p_nhs, p_name_key, p_dob) AS c(n, pos, nhs, name_key, dob)
         WHERE c.n = ANY (fresh) AND (c.nhs IS NOT NULL OR c.dob IS NOT NULL)
    ), matches AS (
        SELECT k.n, k.pos, m.id, m.family_id, m.by_nhs
          FROM kids k
          CROSS JOIN LATERAL (
              SELECT fm.id, fm.family_id, coalesce(fm.nhs_number = k.nhs, false) AS by_nhs
                FROM referrals.family_members fm
               WHERE fm.receiving_area = k.area
                 AND (fm.nhs_number = k.nhs
                      OR (fm.kind = 'child' AND fm.name_key = k.name_key AND fm.date_of_birth = k.dob
                          AND fm.postcode = k.postcode
                          -- two different NHS numbers are two different children
                          AND (fm.nhs_number IS NULL OR k.nhs IS NULL)))
               ORDER BY by_nhs DESC, fm.created_at, fm.id
               LIMIT 1
          ) m
    ), linked AS (
        SELECT DISTINCT ON (n) n, family_id FROM matches ORDER BY n, pos
    )
    SELECT 'child', n, pos, id, family_id, by_nhs, NULL::text, NULL::text, NULL::text, NULL::bytea, NULL::uuid
      FROM matches
    UNION ALL
    SELECT 'adult', l.n, NULL::int, a.id, a.family_id, NULL::boolean, a.name_key, a.role,
           NULL::text, NULL::bytea, NULL::uuid
      FROM linked l
      CROSS JOIN LATERAL (
          SELECT fm.id, fm.family_id, fm.name_key, fm.role FROM referrals.family_members fm
           WHERE fm.family_id = l.family_id AND fm.kind = 'adult'
           OFFSET 0 -- kept a subquery, so it runs once per linked family, through the index
      ) a;
END
$$;
