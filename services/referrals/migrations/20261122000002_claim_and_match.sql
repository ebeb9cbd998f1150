-- CreateReferral's first step in one round trip: claim the request id, take the
-- identity locks, then find the children already known in the area and the adults of
-- the family the first of them belongs to. A plpgsql function because the lookups must
-- run after the locks are held: each statement in it takes a fresh snapshot, so a
-- referral for the same child committed while this one waited for its lock is seen.
--
-- Returns one row `claimed` (the earlier call's method, hash and referral) when the
-- request id was used before; otherwise a `child` row for each child that matches
-- (its 1-based position in the referral, the earliest known member, by NHS number
-- first, else by name, date of birth and postcode, never across two different NHS
-- numbers) and an `adult` row for each adult of the first matched child's family.
CREATE FUNCTION referrals.claim_and_match(
    p_org         text,
    p_request_id  uuid,
    p_method      text,
    p_hash        bytea,
    p_referral_id uuid,
    p_lock_keys   text[],
    p_area        text,
    p_postcode    text,
    p_nhs         text[],
    p_name_keys   text[],
    p_dobs        date[]
) RETURNS TABLE (
    what         text,
    child        int,
    member_id    uuid,
    family_id    uuid,
    by_nhs       boolean,
    name_key     text,
    role         text,
    method       text,
    request_hash bytea,
    referral_id  uuid
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    claimed int;
BEGIN
    INSERT INTO referrals.requests (organisation, request_id, method, request_hash, referral_id)
    VALUES (p_org, p_request_id, p_method, p_hash, p_referral_id)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF claimed = 0 THEN
        RETURN QUERY
        SELECT 'claimed', NULL::int, NULL::uuid, NULL::uuid, NULL::boolean, NULL::text, NULL::text,
               q.method, q.request_hash, q.referral_id
          FROM referrals.requests q
         WHERE q.organisation = p_org AND q.request_id = p_request_id;
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended(k, 0))
       FROM unnest(p_lock_keys) AS k
      ORDER BY k;

    RETURN QUERY
    WITH matches AS (
        SELECT c.pos::int AS pos, m.id, m.family_id, m.by_nhs
          FROM unnest(p_nhs, p_name_keys, p_dobs) WITH ORDINALITY AS c(nhs, name_key, dob, pos)
          CROSS JOIN LATERAL (
              SELECT fm.id, fm.family_id, coalesce(fm.nhs_number = c.nhs, false) AS by_nhs
                FROM referrals.family_members fm
               WHERE fm.receiving_area = p_area
                 AND (fm.nhs_number = c.nhs
                      OR (fm.kind = 'child' AND fm.name_key = c.name_key AND fm.date_of_birth = c.dob
                          AND fm.postcode = p_postcode
                          -- two different NHS numbers are two different children
                          AND (fm.nhs_number IS NULL OR c.nhs IS NULL)))
               ORDER BY by_nhs DESC, fm.created_at, fm.id
               LIMIT 1
          ) m
         WHERE c.nhs IS NOT NULL OR c.dob IS NOT NULL
    ), linked AS (
        SELECT family_id FROM matches ORDER BY pos LIMIT 1
    )
    SELECT 'child', pos, id, family_id, by_nhs, NULL::text, NULL::text, NULL::text, NULL::bytea, NULL::uuid
      FROM matches
    UNION ALL
    SELECT 'adult', NULL::int, fm.id, fm.family_id, NULL::boolean, fm.name_key, fm.role,
           NULL::text, NULL::bytea, NULL::uuid
      FROM referrals.family_members fm JOIN linked l ON fm.family_id = l.family_id
     WHERE fm.kind = 'adult';
END
$$;
