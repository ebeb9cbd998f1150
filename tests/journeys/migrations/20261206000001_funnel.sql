-- The journey's stand-in for a downstream read model: each referral's latest state and
-- whether the family has been contacted.
CREATE TABLE journey.funnel (
    referral  text PRIMARY KEY,
    area      text NOT NULL,
    state     text NOT NULL,
    contacted boolean NOT NULL
);
