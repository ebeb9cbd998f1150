-- Issue 14: how to reach the family; whom consents cover and orders bind; orders made
-- after the referral.

-- The family's postal address (without the postcode) and the referrer's note on how to
-- engage with them.
ALTER TABLE referrals.referrals
    ADD COLUMN address_lines text[] NOT NULL DEFAULT '{}',
    ADD COLUMN engagement_note text NOT NULL DEFAULT '',
    -- The adults (member ids) the Parenting Order binds.
    ADD COLUMN order_bound_members uuid[];

-- Each adult's email and preferred way to be contacted, as the referral gave them.
ALTER TABLE referrals.referral_members
    ADD COLUMN email text NOT NULL DEFAULT '',
    ADD COLUMN preferred_contact text;

-- The adults (member ids) a consent covers. Consents recorded before covered the whole
-- family: every adult named on their referral.
ALTER TABLE referrals.consents ADD COLUMN members uuid[] NOT NULL DEFAULT '{}';
UPDATE referrals.consents c
   SET members = coalesce((SELECT array_agg(rm.member_id ORDER BY rm.position)
                             FROM referrals.referral_members rm
                            WHERE rm.referral_id = c.referral_id AND rm.kind = 'adult'), '{}');

-- Orders recorded before bound every adult named on their referral.
UPDATE referrals.referrals r
   SET order_bound_members = coalesce((SELECT array_agg(rm.member_id ORDER BY rm.position)
                                         FROM referrals.referral_members rm
                                        WHERE rm.referral_id = r.id AND rm.kind = 'adult'), '{}')
 WHERE order_court IS NOT NULL;

-- A voluntary referral may now carry an order made after it (RecordParentingOrder); a
-- court-ordered one still always has one.
ALTER TABLE referrals.referrals DROP CONSTRAINT referrals_order_when_court_ordered;
ALTER TABLE referrals.referrals ADD CONSTRAINT referrals_order_when_court_ordered
    CHECK (route <> 'ROUTE_COURT_ORDERED' OR order_court IS NOT NULL);
ALTER TABLE referrals.referrals ADD CONSTRAINT referrals_order_binds_someone
    CHECK (order_court IS NULL OR cardinality(order_bound_members) > 0);
