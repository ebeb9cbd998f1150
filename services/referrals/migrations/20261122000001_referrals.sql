-- The referrals service's own tables. The outbox, inbox and dead-letter tables are
-- created by hearth-platform before these migrations run.

CREATE TABLE referrals.families (
    id             uuid PRIMARY KEY,
    receiving_area text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Every person a family has been referred with. Children are matched on NHS number, or
-- on name, date of birth and postcode, within one receiving area.
CREATE TABLE referrals.family_members (
    id             uuid PRIMARY KEY,
    family_id      uuid NOT NULL REFERENCES referrals.families (id),
    receiving_area text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('child', 'adult')),
    given_name     text NOT NULL,
    family_name    text NOT NULL,
    -- lower(given|family), for matching
    name_key       text NOT NULL,
    date_of_birth  date,
    due_date       date,
    nhs_number     text,
    ethnicity      text NOT NULL DEFAULT '',
    role           text,
    phone          text NOT NULL DEFAULT '',
    postcode       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX family_members_family ON referrals.family_members (family_id);
CREATE INDEX family_members_nhs ON referrals.family_members (receiving_area, nhs_number)
    WHERE nhs_number IS NOT NULL;
CREATE INDEX family_members_identity ON referrals.family_members (receiving_area, name_key, date_of_birth, postcode)
    WHERE kind = 'child' AND date_of_birth IS NOT NULL;

CREATE TABLE referrals.referrals (
    id                    uuid PRIMARY KEY,
    receiving_area        text NOT NULL,
    referring_org         text NOT NULL,
    created_by            text NOT NULL,
    referrer_name         text NOT NULL,
    referrer_job_title    text NOT NULL,
    referrer_contact      text NOT NULL,
    source                text NOT NULL,
    family_id             uuid NOT NULL REFERENCES referrals.families (id),
    linked_existing       boolean NOT NULL,
    reasons               text[] NOT NULL,
    description           text NOT NULL,
    urgency               text NOT NULL,
    safeguarding          boolean NOT NULL,
    language              text NOT NULL,
    interpreter           boolean NOT NULL,
    accessibility         text NOT NULL,
    creche                boolean NOT NULL,
    transport             boolean NOT NULL,
    preferred_times       text[] NOT NULL,
    postcode              text NOT NULL,
    route                 text NOT NULL,
    order_court           text,
    order_made            date,
    order_expires         date,
    order_officer_org     text,
    order_officer_service text,
    order_officer_name    text,
    state                 text NOT NULL CHECK (state IN ('STATE_RECEIVED', 'STATE_ACCEPTED', 'STATE_SIGNPOSTED',
                                                        'STATE_REDIRECTED', 'STATE_DECLINED', 'STATE_WITHDRAWN')),
    decided_by_org        text,
    decided_by            text,
    decision_reason       text,
    decline_reason        text,
    decision_destination  text,
    received_at           timestamptz NOT NULL,
    first_contact_at      timestamptz,
    decided_at            timestamptz,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT referrals_order_when_court_ordered CHECK ((route = 'ROUTE_COURT_ORDERED') = (order_court IS NOT NULL)),
    CONSTRAINT referrals_order_at_most_12_months CHECK (order_expires IS NULL OR order_expires <= order_made + interval '12 months')
);
CREATE INDEX referrals_by_area ON referrals.referrals (receiving_area, received_at, id);
CREATE INDEX referrals_by_referrer ON referrals.referrals (referring_org, received_at, id);
CREATE INDEX referrals_by_family ON referrals.referrals (family_id);

-- Which family members a referral named, and what that referral said about each.
-- A family may be referred by several organisations; each sees only its own account
-- of a person (family_members holds the identity used for matching, first seen).
CREATE TABLE referrals.referral_members (
    referral_id   uuid NOT NULL REFERENCES referrals.referrals (id),
    member_id     uuid NOT NULL REFERENCES referrals.family_members (id),
    position      int NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('child', 'adult')),
    given_name    text NOT NULL,
    family_name   text NOT NULL,
    date_of_birth date,
    due_date      date,
    nhs_number    text,
    ethnicity     text NOT NULL DEFAULT '',
    role          text,
    phone         text NOT NULL DEFAULT '',
    PRIMARY KEY (referral_id, member_id)
);

CREATE TABLE referrals.consents (
    id              uuid PRIMARY KEY,
    referral_id     uuid NOT NULL REFERENCES referrals.referrals (id),
    given_by        text NOT NULL,
    given_by_role   text NOT NULL,
    given_at        timestamptz NOT NULL,
    scopes          text[] NOT NULL,
    withdrawn_at    timestamptz,
    withdraw_reason text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consents_referral ON referrals.consents (referral_id);

CREATE TABLE referrals.contacts (
    id          uuid PRIMARY KEY,
    referral_id uuid NOT NULL REFERENCES referrals.referrals (id),
    method      text NOT NULL,
    contact_at  timestamptz NOT NULL,
    successful  boolean NOT NULL,
    note        text NOT NULL,
    recorded_by text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_referral ON referrals.contacts (referral_id);

-- Idempotency: a caller organisation's request id names one call, forever.
CREATE TABLE referrals.requests (
    organisation text NOT NULL,
    request_id   uuid NOT NULL,
    method       text NOT NULL,
    request_hash bytea NOT NULL,
    referral_id  uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation, request_id)
);
