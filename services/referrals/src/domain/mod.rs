//! The referral domain: the aggregate, its rules and state machine. Pure: no I/O, no
//! clocks (callers pass `now`), unit-tested here.

pub mod access;
pub mod correction;
pub mod filter;
pub mod linking;
pub mod nhs;
pub mod redaction;
pub mod validate;

use chrono::{DateTime, NaiveDate, Utc};
use hearth_proto::referrals as pb;
use uuid::Uuid;

pub use correction::{Corrected, Correction};
pub use pb::{
    ConsentScope, ContactMethod, CorrectionReason, DeclineReason, ParentingRole, PreferredTime,
    Reason, ResponsibleOfficerService, Route, Source, State, Urgency,
};

/// A new id for something made at `now`: a UUIDv7 (time-ordered) from the handler's
/// clock reading, so the domain reads no clock of its own.
pub fn new_id(now: DateTime<Utc>) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        now.timestamp().max(0) as u64,
        now.timestamp_subsec_nanos(),
    ))
}

/// A referral as the service holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Referral {
    pub id: Uuid,
    pub receiving_area: String,
    pub referring_org: String,
    /// The token subject that created it.
    pub created_by: String,
    pub referrer: Referrer,
    pub source: Source,
    pub family_id: Uuid,
    pub linked_existing: bool,
    pub children: Vec<Child>,
    pub adults: Vec<Adult>,
    pub reasons: Vec<Reason>,
    pub description: String,
    pub urgency: Urgency,
    pub safeguarding: bool,
    pub access: AccessNeeds,
    pub postcode: String,
    /// The postal address without the postcode: 0 to 5 lines.
    pub address_lines: Vec<String>,
    /// The referrer's note on how to engage with the family.
    pub engagement_note: String,
    pub route: Route,
    pub order: Option<ParentingOrder>,
    pub state: State,
    pub decision: Option<Decision>,
    pub consents: Vec<Consent>,
    pub contacts: Vec<Contact>,
    pub received_at: DateTime<Utc>,
    pub first_contact_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub name: String,
    pub job_title: String,
    pub contact: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub member_id: Uuid,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub nhs_number: Option<String>,
    pub ethnicity: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adult {
    pub member_id: Uuid,
    pub given_name: String,
    pub family_name: String,
    pub role: ParentingRole,
    pub date_of_birth: Option<NaiveDate>,
    pub ethnicity: String,
    pub phone: String,
    pub email: String,
    /// How they prefer to be contacted (unspecified: no preference).
    pub preferred_contact: ContactMethod,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessNeeds {
    pub language: String,
    pub interpreter: bool,
    pub accessibility: String,
    pub creche: bool,
    pub transport: bool,
    pub preferred_times: Vec<PreferredTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentingOrder {
    pub court: String,
    pub made: NaiveDate,
    pub expires: NaiveDate,
    pub officer_org: String,
    pub officer_service: ResponsibleOfficerService,
    pub officer_name: String,
    /// The adults (member ids) the order binds.
    pub bound_members: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub id: Uuid,
    pub given_by: String,
    pub given_by_role: ParentingRole,
    pub given_at: DateTime<Utc>,
    pub scopes: Vec<ConsentScope>,
    /// The adults (member ids) the consent covers.
    pub members: Vec<Uuid>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdraw_reason: String,
}

impl Consent {
    pub fn is_active(&self) -> bool {
        self.withdrawn_at.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: Uuid,
    pub method: ContactMethod,
    pub at: DateTime<Utc>,
    pub successful: bool,
    pub note: String,
    pub recorded_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: State,
    pub by_org: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub decline_reason: Option<DeclineReason>,
    pub destination: String,
}

/// A triage decision asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Accept,
    Signpost,
    Redirect,
    Decline,
    Withdraw,
}

impl Verb {
    pub fn target(self) -> State {
        match self {
            Verb::Accept => State::Accepted,
            Verb::Signpost => State::Signposted,
            Verb::Redirect => State::Redirected,
            Verb::Decline => State::Declined,
            Verb::Withdraw => State::Withdrawn,
        }
    }
}

/// Why a change is not allowed in the referral's current state. Each maps to
/// FAILED_PRECONDITION with its stable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleBroken {
    #[error("the referral is already {0}; a decision is final")]
    AlreadyDecided(&'static str),
    #[error(
        "a referral with a safeguarding concern cannot be signposted or declined; accept it or redirect it to children's social care"
    )]
    SafeguardingConcern,
    #[error(
        "an assessment needs the family's explicit consent, or a Parenting Order in force: record consent covering assessment first"
    )]
    ConsentRequired,
    #[error("the referral is {0}; {1}")]
    Closed(&'static str, &'static str),
    #[error("this consent was already withdrawn")]
    ConsentAlreadyWithdrawn,
}

impl RuleBroken {
    pub fn reason(&self) -> &'static str {
        match self {
            RuleBroken::AlreadyDecided(_) => "REFERRAL_ALREADY_DECIDED",
            RuleBroken::SafeguardingConcern => "SAFEGUARDING_CONCERN",
            RuleBroken::ConsentRequired => "ASSESSMENT_CONSENT_REQUIRED",
            RuleBroken::Closed(..) => "REFERRAL_CLOSED",
            RuleBroken::ConsentAlreadyWithdrawn => "CONSENT_ALREADY_WITHDRAWN",
        }
    }
}

/// A lower-case word for a state, for messages.
pub fn state_word(s: State) -> &'static str {
    match s {
        State::Unspecified => "unspecified",
        State::Received => "received",
        State::Accepted => "accepted",
        State::Signposted => "signposted",
        State::Redirected => "redirected",
        State::Declined => "declined",
        State::Withdrawn => "withdrawn",
    }
}

impl Referral {
    /// Checks a triage decision against the state graph and the rules:
    /// received → accepted | signposted | redirected | declined | withdrawn.
    /// `assessment_basis`: whether the consent-in-force rule finds an assessment
    /// consent, or an order standing in, across the family's referrals in the area
    /// (`hearth_platform::consent`).
    pub fn check_decision(&self, verb: Verb, assessment_basis: bool) -> Result<State, RuleBroken> {
        if self.state != State::Received {
            return Err(RuleBroken::AlreadyDecided(state_word(self.state)));
        }
        match verb {
            Verb::Signpost | Verb::Decline if self.safeguarding => {
                Err(RuleBroken::SafeguardingConcern)
            }
            Verb::Accept if !assessment_basis => Err(RuleBroken::ConsentRequired),
            _ => Ok(verb.target()),
        }
    }

    /// Records a decision. Call only after [`Referral::check_decision`] passed.
    pub fn decide(&mut self, decision: Decision) {
        self.state = decision.outcome;
        self.decided_at = Some(decision.at);
        self.updated_at = decision.at;
        self.decision = Some(decision);
    }

    /// Contacts and Parenting Orders are recorded while the referral is live.
    pub fn check_open(&self) -> Result<(), RuleBroken> {
        match self.state {
            State::Received | State::Accepted => Ok(()),
            s => Err(RuleBroken::Closed(
                state_word(s),
                "contacts and Parenting Orders can only be recorded while it is received or accepted",
            )),
        }
    }

    /// Consents are recorded while the referral is live, and after signposting (a
    /// signposted family may consent to a programme referral for a universal offer).
    pub fn check_takes_consent(&self) -> Result<(), RuleBroken> {
        match self.state {
            State::Received | State::Accepted | State::Signposted => Ok(()),
            s => Err(RuleBroken::Closed(
                state_word(s),
                "consents can only be recorded while it is received, accepted or signposted",
            )),
        }
    }

    /// Records a Parenting Order (an order made after the referral, or one replacing
    /// the order recorded on it); says whether it replaced one. Call after
    /// [`Referral::check_open`].
    pub fn record_order(&mut self, order: ParentingOrder, now: DateTime<Utc>) -> bool {
        let replaced = self.order.replace(order).is_some();
        self.updated_at = now;
        replaced
    }

    /// The adults' member ids.
    pub fn adult_ids(&self) -> Vec<Uuid> {
        self.adults.iter().map(|a| a.member_id).collect()
    }

    /// Adds a contact; returns true when it is the first successful one, which sets
    /// the time-to-first-contact measure.
    pub fn add_contact(&mut self, contact: Contact, now: DateTime<Utc>) -> bool {
        let first = contact.successful && self.first_contact_at.is_none_or(|t| contact.at < t);
        if first {
            self.first_contact_at = Some(contact.at);
        }
        self.contacts.push(contact);
        self.contacts.sort_by_key(|c| c.at);
        self.updated_at = now;
        first
    }

    /// Withdraws a consent. Withdrawal is honoured in any state.
    pub fn withdraw_consent(
        &mut self,
        consent_id: Uuid,
        at: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<&Consent>, RuleBroken> {
        let Some(c) = self.consents.iter_mut().find(|c| c.id == consent_id) else {
            return Ok(None);
        };
        if !c.is_active() {
            return Err(RuleBroken::ConsentAlreadyWithdrawn);
        }
        c.withdrawn_at = Some(at);
        c.withdraw_reason = reason.to_owned();
        self.updated_at = now;
        Ok(Some(c))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(now: DateTime<Utc>) -> Referral {
        Referral {
            id: Uuid::now_v7(),
            receiving_area: "midlothian".into(),
            referring_org: "school".into(),
            created_by: "u1".into(),
            referrer: Referrer {
                name: "R".into(),
                job_title: String::new(),
                contact: String::new(),
            },
            source: Source::School,
            family_id: Uuid::now_v7(),
            linked_existing: false,
            children: vec![],
            adults: vec![],
            reasons: vec![Reason::Sleep],
            description: String::new(),
            urgency: Urgency::Routine,
            safeguarding: false,
            access: AccessNeeds::default(),
            postcode: "EH22 1AB".into(),
            address_lines: vec![],
            engagement_note: String::new(),
            route: Route::Voluntary,
            order: None,
            state: State::Received,
            decision: None,
            consents: vec![Consent {
                id: Uuid::now_v7(),
                given_by: "M".into(),
                given_by_role: ParentingRole::Mother,
                given_at: now,
                scopes: vec![ConsentScope::Assessment],
                members: vec![],
                withdrawn_at: None,
                withdraw_reason: String::new(),
            }],
            contacts: vec![],
            received_at: now,
            first_contact_at: None,
            decided_at: None,
            updated_at: now,
        }
    }

    fn decision(outcome: State, now: DateTime<Utc>) -> Decision {
        Decision {
            outcome,
            by_org: "midlothian".into(),
            by: "t".into(),
            at: now,
            reason: String::new(),
            decline_reason: None,
            destination: String::new(),
        }
    }

    #[test]
    fn a_received_referral_can_take_every_decision_once() {
        let now = Utc::now();
        for verb in [
            Verb::Accept,
            Verb::Signpost,
            Verb::Redirect,
            Verb::Decline,
            Verb::Withdraw,
        ] {
            let mut r = sample(now);
            let to = r.check_decision(verb, true).unwrap();
            assert_eq!(to, verb.target());
            r.decide(decision(to, now));
            for again in [
                Verb::Accept,
                Verb::Signpost,
                Verb::Redirect,
                Verb::Decline,
                Verb::Withdraw,
            ] {
                assert!(
                    matches!(
                        r.check_decision(again, true),
                        Err(RuleBroken::AlreadyDecided(_))
                    ),
                    "{verb:?} then {again:?}"
                );
            }
        }
    }

    #[test]
    fn safeguarding_blocks_signpost_and_decline_only() {
        let now = Utc::now();
        let mut r = sample(now);
        r.safeguarding = true;
        assert_eq!(
            r.check_decision(Verb::Signpost, true),
            Err(RuleBroken::SafeguardingConcern)
        );
        assert_eq!(
            r.check_decision(Verb::Decline, true),
            Err(RuleBroken::SafeguardingConcern)
        );
        assert_eq!(
            r.check_decision(Verb::Redirect, true),
            Ok(State::Redirected)
        );
        assert_eq!(r.check_decision(Verb::Accept, true), Ok(State::Accepted));
        assert_eq!(r.check_decision(Verb::Withdraw, true), Ok(State::Withdrawn));
    }

    #[test]
    fn accepting_needs_an_assessment_basis_and_a_consent_is_withdrawn_once() {
        let now = Utc::now();
        let mut r = sample(now);
        assert_eq!(
            r.check_decision(Verb::Accept, false),
            Err(RuleBroken::ConsentRequired)
        );
        assert_eq!(
            RuleBroken::ConsentRequired.reason(),
            "ASSESSMENT_CONSENT_REQUIRED"
        );
        // Other decisions need no consent.
        assert_eq!(
            r.check_decision(Verb::Redirect, false),
            Ok(State::Redirected)
        );
        let id = r.consents[0].id;
        r.withdraw_consent(id, now, "changed mind", now).unwrap();
        assert_eq!(
            r.withdraw_consent(id, now, "again", now).unwrap_err(),
            RuleBroken::ConsentAlreadyWithdrawn
        );
    }

    #[test]
    fn consents_follow_a_signposting_and_orders_only_a_live_referral() {
        let now = Utc::now();
        let mut r = sample(now);
        r.decide(decision(State::Signposted, now));
        assert!(r.check_takes_consent().is_ok());
        assert!(matches!(
            r.check_open(),
            Err(RuleBroken::Closed("signposted", _))
        ));
        r.state = State::Declined;
        assert!(matches!(
            r.check_takes_consent(),
            Err(RuleBroken::Closed("declined", _))
        ));
    }

    #[test]
    fn first_contact_is_the_earliest_successful_one() {
        let now = Utc::now();
        let mut r = sample(now);
        let c = |mins: i64, ok: bool| Contact {
            id: Uuid::now_v7(),
            method: ContactMethod::Phone,
            at: now + chrono::Duration::minutes(mins),
            successful: ok,
            note: String::new(),
            recorded_by: "t".into(),
        };
        assert!(
            !r.add_contact(c(5, false), now),
            "an unanswered call is not contact"
        );
        assert!(r.first_contact_at.is_none());
        assert!(r.add_contact(c(30, true), now));
        assert!(!r.add_contact(c(60, true), now));
        assert!(
            r.add_contact(c(10, true), now),
            "an earlier contact recorded late wins"
        );
        assert_eq!(
            r.first_contact_at,
            Some(now + chrono::Duration::minutes(10))
        );
    }

    #[test]
    fn closed_referrals_take_no_contacts() {
        let now = Utc::now();
        let mut r = sample(now);
        assert!(r.check_open().is_ok());
        r.decide(decision(State::Declined, now));
        assert!(matches!(
            r.check_open(),
            Err(RuleBroken::Closed("declined", _))
        ));
    }
}
