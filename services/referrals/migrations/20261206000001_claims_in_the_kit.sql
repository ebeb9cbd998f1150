-- Request-id claims move to the service kit's table, `referrals.request_claims` (made by
-- hearth-platform's `db::migrate` before these migrations, with its claiming function
-- `referrals.claim_requests`). The claims made so far move across, naming the
-- referral they made or changed; the old table goes.
INSERT INTO referrals.request_claims (organisation, request_id, method, request_hash, resource, created_at)
SELECT organisation, request_id, method, request_hash, 'referrals/' || referral_id, created_at
  FROM referrals.requests
ON CONFLICT DO NOTHING;
DROP TABLE referrals.requests;

-- CreateReferral's first step for several creates written in one transaction (the
-- intake's group commit; a single create is a batch of one), in one round trip.
-- Replaces the function of 20261205000001, which claimed request ids itself.
--
-- Per item (1-based, in array order): claims the request id through the kit's
-- `referrals.claim_requests`; for the items whose claim is fresh, takes the identity
-- locks, then applies the family-linking lookup (the rule is stated, and tested
-- against this function, in `src/domain/linking.rs`). A plpgsql function because the
-- lookups must run after the locks are held: each statement takes a fresh snapshot,
-- so a referral for the same child committed while this one waited is seen.
--
-- Returns, tagged with the item:
--   `claim`  one per item: `fresh`, or the earlier claim's method, hash and resource;
--   `child`  a known member matching child `child` (1-based) of the item;
--   `adult`  an adult of the family of the item's first matched child.
--
-- Callers must not put one request id, or two items sharing a lock key, in one call
-- (the intake puts them in successive transactions).
DROP FUNCTION referrals.claim_and_match(text, text[], uuid[], bytea[], uuid[], text[], text[], int[], text[],
                                        int[], int[], text[], text[], date[]);

CREATE FUNCTION referrals.claim_and_match(
    p_method      text,
    -- one element per item
    p_org         text[],
    p_request_id  uuid[],
    p_hash        bytea[],
    p_resource    text[],
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
    fresh        boolean,
    method       text,
    request_hash bytea,
    resource     text,
    child        int,
    member_id    uuid,
    family_id    uuid,
    by_nhs       boolean,
    name_key     text,
    role         text
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
    claimed record;
    fresh_items int[] := '{}';
BEGIN
    FOR claimed IN
        SELECT * FROM referrals.claim_requests(p_method, p_org, p_request_id, p_hash, p_resource)
    LOOP
        IF claimed.fresh THEN
            fresh_items := fresh_items || claimed.n;
        END IF;
        what := 'claim';
        item := claimed.n;
        fresh := claimed.fresh;
        method := claimed.method;
        request_hash := claimed.request_hash;
        resource := claimed.resource;
        RETURN NEXT;
    END LOOP;

    IF cardinality(fresh_items) = 0 THEN
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended(k, 0))
       FROM (SELECT DISTINCT l.k FROM unnest(p_lock_item, p_lock_key) AS l(n, k) WHERE l.n = ANY (fresh_items)) keys
      ORDER BY k;

    RETURN QUERY
    WITH kids AS (
        SELECT c.n, c.pos, c.nhs, c.name_key, c.dob, p_area[c.n] AS area, p_postcode[c.n] AS postcode
          FROM unnest(p_child_item, p_child_pos, p_nhs, p_name_key, p_dob) AS c(n, pos, nhs, name_key, dob)
         WHERE c.n = ANY (fresh_items) AND (c.nhs IS NOT NULL OR c.dob IS NOT NULL)
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
    SELECT 'child', n, NULL::boolean, NULL::text, NULL::bytea, NULL::text, pos, id, family_id, by_nhs,
           NULL::text, NULL::text
      FROM matches
    UNION ALL
    SELECT 'adult', l.n, NULL::boolean, NULL::text, NULL::bytea, NULL::text, NULL::int, a.id, a.family_id,
           NULL::boolean, a.name_key, a.role
      FROM linked l
      CROSS JOIN LATERAL (
          SELECT fm.id, fm.family_id, fm.name_key, fm.role FROM referrals.family_members fm
           WHERE fm.family_id = l.family_id AND fm.kind = 'adult'
           OFFSET 0 -- kept a subquery, so it runs once per linked family, through the index
      ) a;
END
$$;
