//! Request validation. Every check that fails adds a field violation naming the field
//! (as a path into the request, e.g. `referral.family.children[0].nhs_number`), so a
//! partner system can fix every problem in one go. Nothing is written for a request
//! that fails here.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use hearth_platform::Violations;
use hearth_proto::referrals as pb;
use uuid::Uuid;

use super::*;

pub const MAX_CHILDREN: usize = 12;
pub const MAX_ADULTS: usize = 8;
pub const MAX_REASONS: usize = 10;
pub const MAX_CONSENTS: usize = 10;
const NAME_LEN: usize = 100;
const PERSON_LEN: usize = 200;
const SHORT_LEN: usize = 500;
const REASON_LEN: usize = 2000;
const DESCRIPTION_LEN: usize = 4000;
/// Clock skew allowed between a partner system and us for "not in the future".
const SKEW: chrono::Duration = chrono::Duration::minutes(5);

pub use hearth_platform::validate::{
    date, org_id, request_id, required_enum, resource_id, resource_name, text, timestamp,
};

/// When a consent was withdrawn: the time the caller gave (already checked with
/// [`timestamp`]), which must not be before the consent was given, or else now —
/// moved up to the time given, which may be a few minutes ahead of our clock.
pub fn withdraw_time(
    v: &mut Violations,
    requested: Option<DateTime<Utc>>,
    given_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match requested {
        Some(t) if t < given_at => {
            v.add("withdraw_time", "must not be before the consent was given");
            t
        }
        Some(t) => t,
        None => now.max(given_at),
    }
}

/// Parses `referrals/{referral}/consents/{consent}`.
pub fn consent_name(v: &mut Violations, field: &str, raw: &str) -> (Uuid, Uuid) {
    match resource_name(v, field, raw, &["referrals", "consents"]).as_deref() {
        Some([r, c]) => (*r, *c),
        _ => (Uuid::nil(), Uuid::nil()),
    }
}

/// Free-text reason on a decision.
pub fn reason(v: &mut Violations, field: &str, raw: &str, required: bool) -> String {
    text(v, field, raw, required, REASON_LEN)
}

pub fn short_text(v: &mut Violations, field: &str, raw: &str, required: bool) -> String {
    text(v, field, raw, required, SHORT_LEN)
}

pub fn decline_reason(v: &mut Violations, field: &str, raw: i32) -> DeclineReason {
    required_enum(v, field, raw)
}

/// A consent as given in a request.
pub fn consent(v: &mut Violations, path: &str, c: &pb::Consent, now: DateTime<Utc>) -> Consent {
    let given_by = text(
        v,
        &format!("{path}.given_by"),
        &c.given_by,
        true,
        PERSON_LEN,
    );
    let role = required_enum(v, &format!("{path}.given_by_role"), c.given_by_role);
    let given_at = match &c.give_time {
        None => {
            v.add(format!("{path}.give_time"), "is required");
            now
        }
        Some(ts) => match timestamp(v, &format!("{path}.give_time"), ts) {
            Some(t) if t > now + SKEW => {
                v.add(format!("{path}.give_time"), "must not be in the future");
                now
            }
            Some(t) => t,
            None => now,
        },
    };
    let mut scopes: Vec<ConsentScope> = Vec::new();
    if c.scopes.is_empty() {
        v.add(format!("{path}.scopes"), "at least one scope is required");
    }
    for (i, raw) in c.scopes.iter().enumerate() {
        let s: ConsentScope = required_enum(v, &format!("{path}.scopes[{i}]"), *raw);
        if scopes.contains(&s) && s != ConsentScope::Unspecified {
            v.add(format!("{path}.scopes[{i}]"), "is repeated");
        }
        scopes.push(s);
    }
    Consent {
        id: new_id(now),
        given_by,
        given_by_role: role,
        given_at,
        scopes,
        withdrawn_at: None,
        withdraw_reason: String::new(),
    }
}

/// A contact as given in a request. It must fall between the referral's receipt and now.
pub fn contact(
    v: &mut Violations,
    path: &str,
    c: &pb::Contact,
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
    recorded_by: &str,
) -> Contact {
    let method = required_enum(v, &format!("{path}.method"), c.method);
    let at = match &c.contact_time {
        None => {
            v.add(format!("{path}.contact_time"), "is required");
            now
        }
        Some(ts) => match timestamp(v, &format!("{path}.contact_time"), ts) {
            Some(t) if t > now + SKEW => {
                v.add(format!("{path}.contact_time"), "must not be in the future");
                now
            }
            Some(t) if t + SKEW < received_at => {
                v.add(
                    format!("{path}.contact_time"),
                    "must not be before the referral was received",
                );
                now
            }
            Some(t) => t,
            None => now,
        },
    };
    Contact {
        id: new_id(now),
        method,
        at,
        successful: c.successful,
        note: text(v, &format!("{path}.note"), &c.note, false, REASON_LEN),
        recorded_by: recorded_by.to_owned(),
    }
}

/// Validates a new referral from `caller_org`/`caller` and builds it, received now.
/// Family and member ids are fresh; linking may replace them.
pub fn new_referral(
    r: &pb::Referral,
    caller_org: &str,
    caller: &str,
    now: DateTime<Utc>,
) -> Result<Referral, Violations> {
    let mut v = Violations::new();
    let today = now.date_naive();
    let p = "referral";

    let receiving_area = org_id(&mut v, &format!("{p}.receiving_area"), &r.receiving_area);
    let referrer = match &r.referrer {
        None => {
            v.add(format!("{p}.referrer"), "is required");
            Referrer {
                name: String::new(),
                job_title: String::new(),
                contact: String::new(),
            }
        }
        Some(x) => Referrer {
            name: text(
                &mut v,
                &format!("{p}.referrer.display_name"),
                &x.display_name,
                true,
                PERSON_LEN,
            ),
            job_title: text(
                &mut v,
                &format!("{p}.referrer.job_title"),
                &x.job_title,
                false,
                PERSON_LEN,
            ),
            contact: text(
                &mut v,
                &format!("{p}.referrer.contact"),
                &x.contact,
                false,
                PERSON_LEN,
            ),
        },
    };
    let source: Source = required_enum(&mut v, &format!("{p}.source"), r.source);

    let (children, adults) = match &r.family {
        None => {
            v.add(format!("{p}.family"), "is required");
            (vec![], vec![])
        }
        Some(f) => family(&mut v, &format!("{p}.family"), f, now),
    };

    let mut reasons = Vec::new();
    if r.reasons.is_empty() {
        v.add(format!("{p}.reasons"), "at least one reason is required");
    } else if r.reasons.len() > MAX_REASONS {
        v.add(
            format!("{p}.reasons"),
            format!("at most {MAX_REASONS} reasons"),
        );
    }
    for (i, raw) in r.reasons.iter().enumerate() {
        let reason: Reason = required_enum(&mut v, &format!("{p}.reasons[{i}]"), *raw);
        if reason != Reason::Unspecified && reasons.contains(&reason) {
            v.add(format!("{p}.reasons[{i}]"), "is repeated");
        }
        reasons.push(reason);
    }
    let description = text(
        &mut v,
        &format!("{p}.description"),
        &r.description,
        false,
        DESCRIPTION_LEN,
    );
    let urgency: Urgency = required_enum(&mut v, &format!("{p}.urgency"), r.urgency);

    let access = match &r.access_needs {
        None => AccessNeeds::default(),
        Some(a) => {
            let ap = format!("{p}.access_needs");
            let language = text(&mut v, &format!("{ap}.language"), &a.language, false, 35);
            if !language.is_empty()
                && !language
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                v.add(
                    format!("{ap}.language"),
                    "must be a BCP 47 language tag such as en, pl or ar",
                );
            }
            let mut preferred_times = Vec::new();
            for (i, raw) in a.preferred_times.iter().enumerate() {
                let t: PreferredTime =
                    required_enum(&mut v, &format!("{ap}.preferred_times[{i}]"), *raw);
                if !preferred_times.contains(&t) {
                    preferred_times.push(t);
                }
            }
            AccessNeeds {
                language,
                interpreter: a.interpreter_needed,
                accessibility: text(
                    &mut v,
                    &format!("{ap}.accessibility"),
                    &a.accessibility,
                    false,
                    1000,
                ),
                creche: a.creche_needed,
                transport: a.transport_needed,
                preferred_times,
            }
        }
    };

    let postcode =
        hearth_platform::validate::uk_postcode(&mut v, &format!("{p}.postcode"), &r.postcode, true);

    if r.consents.len() > MAX_CONSENTS {
        v.add(
            format!("{p}.consents"),
            format!("at most {MAX_CONSENTS} consents"),
        );
    }
    let mut consents: Vec<Consent> = r
        .consents
        .iter()
        .enumerate()
        .map(|(i, c)| consent(&mut v, &format!("{p}.consents[{i}]"), c, now))
        .collect();

    // Stored and read back oldest first.
    consents.sort_by_key(|c| (c.given_at, c.id));
    let route: Route = required_enum(&mut v, &format!("{p}.route"), r.route);
    let order = match (route, &r.parenting_order) {
        (Route::CourtOrdered, None) => {
            v.add(
                format!("{p}.parenting_order"),
                "is required for a court-ordered referral",
            );
            None
        }
        (Route::CourtOrdered, Some(o)) => {
            parenting_order(&mut v, &format!("{p}.parenting_order"), o, today)
        }
        (_, Some(_)) => {
            v.add(
                format!("{p}.parenting_order"),
                "must be empty unless the route is court-ordered",
            );
            None
        }
        (_, None) => None,
    };

    if route == Route::Voluntary && !r.safeguarding_concern && r.consents.is_empty() {
        v.add(
            format!("{p}.consents"),
            "a voluntary referral needs the family's consent (only a safeguarding concern may be referred without it)",
        );
    }

    v.into_result(Referral {
        id: new_id(now),
        receiving_area,
        referring_org: caller_org.to_owned(),
        created_by: caller.to_owned(),
        referrer,
        source,
        family_id: new_id(now),
        linked_existing: false,
        children,
        adults,
        reasons,
        description,
        urgency,
        safeguarding: r.safeguarding_concern,
        access,
        postcode,
        route,
        order,
        state: State::Received,
        decision: None,
        consents,
        contacts: vec![],
        received_at: now,
        first_contact_at: None,
        decided_at: None,
        updated_at: now,
    })
}

fn family(
    v: &mut Violations,
    p: &str,
    f: &pb::FamilyDetails,
    now: DateTime<Utc>,
) -> (Vec<Child>, Vec<Adult>) {
    let today = now.date_naive();
    if f.children.is_empty() {
        v.add(
            format!("{p}.children"),
            "at least one child (or unborn child) is required",
        );
    }
    if f.children.len() > MAX_CHILDREN {
        v.add(
            format!("{p}.children"),
            format!("at most {MAX_CHILDREN} children"),
        );
    }
    if f.adults.len() > MAX_ADULTS {
        v.add(
            format!("{p}.adults"),
            format!("at most {MAX_ADULTS} adults"),
        );
    }
    let mut children = Vec::new();
    for (i, c) in f.children.iter().enumerate().take(MAX_CHILDREN) {
        let cp = format!("{p}.children[{i}]");
        let dob = c
            .date_of_birth
            .as_ref()
            .and_then(|d| date(v, &format!("{cp}.date_of_birth"), d));
        let due = c
            .due_date
            .as_ref()
            .and_then(|d| date(v, &format!("{cp}.due_date"), d));
        match (&c.date_of_birth, &c.due_date) {
            (None, None) => v.add(
                format!("{cp}.date_of_birth"),
                "is required (or due_date for an unborn child)",
            ),
            (Some(_), Some(_)) => v.add(
                format!("{cp}.due_date"),
                "must be empty when date_of_birth is set",
            ),
            _ => {}
        }
        if dob.is_some_and(|d| d > today) {
            v.add(format!("{cp}.date_of_birth"), "must not be in the future");
        }
        if dob.is_some_and(|d| d.year() < today.year() - 25) {
            v.add(
                format!("{cp}.date_of_birth"),
                "is more than 25 years ago: a child is expected",
            );
        }
        if due.is_some_and(|d| d < today) {
            v.add(format!("{cp}.due_date"), "must not be in the past");
        }
        if due.is_some_and(|d| d > today + chrono::Duration::days(300)) {
            v.add(format!("{cp}.due_date"), "must be within the next 300 days");
        }
        let unborn = c.due_date.is_some() && c.date_of_birth.is_none();
        let given_name = text(
            v,
            &format!("{cp}.given_name"),
            &c.given_name,
            !unborn,
            NAME_LEN,
        );
        let family_name = text(
            v,
            &format!("{cp}.family_name"),
            &c.family_name,
            !unborn,
            NAME_LEN,
        );
        let nhs_number = if c.nhs_number.trim().is_empty() {
            None
        } else {
            let n = nhs::normalise(&c.nhs_number);
            if n.is_none() {
                v.add(
                    format!("{cp}.nhs_number"),
                    "is not a valid NHS number (10 digits with a modulus-11 check digit)",
                );
            }
            n
        };
        children.push(Child {
            member_id: new_id(now),
            given_name,
            family_name,
            date_of_birth: dob,
            due_date: due,
            nhs_number,
            ethnicity: text(v, &format!("{cp}.ethnicity"), &c.ethnicity, false, 60),
        });
    }
    // Each person once: the same NHS number, or the same name and date of birth, twice
    // in one family is a mistake that would otherwise merge into one person.
    let same_person = |a: &Child, b: &Child| {
        (a.nhs_number.is_some() && a.nhs_number == b.nhs_number)
            || (a.date_of_birth.is_some()
                && a.date_of_birth == b.date_of_birth
                && a.given_name.to_lowercase() == b.given_name.to_lowercase()
                && a.family_name.to_lowercase() == b.family_name.to_lowercase())
    };
    for (i, c) in children.iter().enumerate() {
        if children[..i].iter().any(|o| same_person(o, c)) {
            v.add(format!("{p}.children[{i}]"), "is repeated: each child once");
        }
    }
    let mut adults = Vec::new();
    for (i, a) in f.adults.iter().enumerate().take(MAX_ADULTS) {
        let ap = format!("{p}.adults[{i}]");
        let dob = a
            .date_of_birth
            .as_ref()
            .and_then(|d| date(v, &format!("{ap}.date_of_birth"), d));
        if dob.is_some_and(|d| d > today) {
            v.add(format!("{ap}.date_of_birth"), "must not be in the future");
        }
        adults.push(Adult {
            member_id: new_id(now),
            given_name: text(
                v,
                &format!("{ap}.given_name"),
                &a.given_name,
                true,
                NAME_LEN,
            ),
            family_name: text(
                v,
                &format!("{ap}.family_name"),
                &a.family_name,
                true,
                NAME_LEN,
            ),
            role: required_enum(v, &format!("{ap}.role"), a.role),
            date_of_birth: dob,
            ethnicity: text(v, &format!("{ap}.ethnicity"), &a.ethnicity, false, 60),
            phone: text(v, &format!("{ap}.phone"), &a.phone, false, 40),
        });
    }
    for (i, a) in adults.iter().enumerate() {
        let same = |o: &Adult| {
            o.role == a.role
                && o.given_name.to_lowercase() == a.given_name.to_lowercase()
                && o.family_name.to_lowercase() == a.family_name.to_lowercase()
        };
        if adults[..i].iter().any(same) {
            v.add(format!("{p}.adults[{i}]"), "is repeated: each adult once");
        }
    }
    (children, adults)
}

fn parenting_order(
    v: &mut Violations,
    p: &str,
    o: &pb::ParentingOrder,
    today: NaiveDate,
) -> Option<ParentingOrder> {
    let court = text(v, &format!("{p}.court"), &o.court, true, PERSON_LEN);
    let made = match &o.made_date {
        None => {
            v.add(format!("{p}.made_date"), "is required");
            None
        }
        Some(d) => date(v, &format!("{p}.made_date"), d),
    };
    let expires = match &o.expiry_date {
        None => {
            v.add(format!("{p}.expiry_date"), "is required");
            None
        }
        Some(d) => date(v, &format!("{p}.expiry_date"), d),
    };
    if made.is_some_and(|m| m > today) {
        v.add(format!("{p}.made_date"), "must not be in the future");
    }
    if let (Some(m), Some(e)) = (made, expires) {
        if e <= m {
            v.add(format!("{p}.expiry_date"), "must be after made_date");
        } else if m
            .checked_add_months(Months::new(12))
            .is_some_and(|limit| e > limit)
        {
            v.add(
                format!("{p}.expiry_date"),
                "a Parenting Order lasts at most 12 months from the day it is made",
            );
        }
    }
    let officer_org = org_id(
        v,
        &format!("{p}.responsible_officer_organisation"),
        &o.responsible_officer_organisation,
    );
    let officer_service = required_enum(
        v,
        &format!("{p}.responsible_officer_service"),
        o.responsible_officer_service,
    );
    let officer_name = text(
        v,
        &format!("{p}.responsible_officer_name"),
        &o.responsible_officer_name,
        false,
        PERSON_LEN,
    );
    Some(ParentingOrder {
        court,
        made: made?,
        expires: expires?,
        officer_org,
        officer_service,
        officer_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::types::Date;

    fn d(y: i32, m: i32, day: i32) -> Option<Date> {
        Some(Date {
            year: y,
            month: m,
            day,
        })
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn valid() -> pb::Referral {
        pb::Referral {
            receiving_area: "midlothian".into(),
            referrer: Some(pb::Referrer {
                display_name: "Asha Patel".into(),
                job_title: "Health visitor".into(),
                contact: "01234 567890".into(),
            }),
            source: Source::HealthVisitor as i32,
            family: Some(pb::FamilyDetails {
                children: vec![pb::Child {
                    given_name: "Sam".into(),
                    family_name: "Reid".into(),
                    date_of_birth: d(2023, 2, 1),
                    nhs_number: "943 476 5919".into(),
                    ..Default::default()
                }],
                adults: vec![pb::Adult {
                    given_name: "Jo".into(),
                    family_name: "Reid".into(),
                    role: ParentingRole::Father as i32,
                    ..Default::default()
                }],
            }),
            reasons: vec![Reason::Sleep as i32],
            urgency: Urgency::Routine as i32,
            postcode: "eh22 1ab".into(),
            consents: vec![pb::Consent {
                given_by: "Jo Reid".into(),
                given_by_role: ParentingRole::Father as i32,
                give_time: Some(prost_types::Timestamp {
                    seconds: now().timestamp() - 3600,
                    nanos: 0,
                }),
                scopes: vec![ConsentScope::Assessment as i32],
                ..Default::default()
            }],
            route: Route::Voluntary as i32,
            ..Default::default()
        }
    }

    fn violations(r: &pb::Referral) -> Vec<String> {
        match new_referral(r, "nhs-lothian", "u", now()) {
            Ok(_) => vec![],
            Err(v) => v.fields().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn consent_is_withdrawn_no_earlier_than_it_was_given() {
        let given = now();
        let hour = chrono::Duration::hours(1);
        let mut v = Violations::new();
        assert_eq!(
            withdraw_time(&mut v, Some(given + hour), given, given),
            given + hour
        );
        assert_eq!(withdraw_time(&mut v, Some(given), given, given), given);
        // Not given: now, or the give time when that is (a little) ahead of now.
        assert_eq!(withdraw_time(&mut v, None, given - hour, given), given);
        assert_eq!(
            withdraw_time(&mut v, None, given + hour, given),
            given + hour
        );
        assert!(v.is_empty());
        withdraw_time(&mut v, Some(given - hour), given, given);
        assert_eq!(v.fields().collect::<Vec<_>>(), ["withdraw_time"]);
    }

    #[test]
    fn a_complete_referral_is_accepted_and_normalised() {
        let r = new_referral(&valid(), "nhs-lothian", "u", now()).unwrap();
        assert_eq!(r.postcode, "EH22 1AB");
        assert_eq!(r.children[0].nhs_number.as_deref(), Some("9434765919"));
        assert_eq!(r.state, State::Received);
        assert_eq!(r.referring_org, "nhs-lothian");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut r = valid();
        r.receiving_area = "".into();
        r.source = 99;
        r.urgency = 0;
        r.postcode = "NOT A POSTCODE".into();
        let f = r.family.as_mut().unwrap();
        f.children[0].date_of_birth = d(2027, 1, 1);
        f.children[0].nhs_number = "9434765918".into();
        f.adults[0].given_name = "x".repeat(101);
        let got = violations(&r);
        for want in [
            "referral.receiving_area",
            "referral.source",
            "referral.urgency",
            "referral.postcode",
            "referral.family.children[0].date_of_birth",
            "referral.family.children[0].nhs_number",
            "referral.family.adults[0].given_name",
        ] {
            assert!(got.contains(&want.to_owned()), "missing {want} in {got:?}");
        }
    }

    #[test]
    fn unborn_children_need_a_due_date_not_in_the_past() {
        let mut r = valid();
        r.family.as_mut().unwrap().children = vec![pb::Child {
            due_date: d(2026, 6, 1),
            ..Default::default()
        }];
        assert_eq!(violations(&r), vec!["referral.family.children[0].due_date"]);
        r.family.as_mut().unwrap().children[0].due_date = d(2026, 9, 1);
        assert!(violations(&r).is_empty(), "an unborn child needs no name");
        r.family.as_mut().unwrap().children[0].due_date = d(2026, 2, 30);
        assert_eq!(violations(&r), vec!["referral.family.children[0].due_date"]);
    }

    #[test]
    fn family_size_is_bounded() {
        let mut r = valid();
        let child = r.family.as_ref().unwrap().children[0].clone();
        r.family.as_mut().unwrap().children = vec![child; MAX_CHILDREN + 1];
        assert!(violations(&r).contains(&"referral.family.children".to_owned()));
        r.family.as_mut().unwrap().children.clear();
        assert!(violations(&r).contains(&"referral.family.children".to_owned()));
    }

    #[test]
    fn parenting_orders_last_at_most_twelve_months() {
        let mut r = valid();
        r.route = Route::CourtOrdered as i32;
        r.consents.clear();
        assert_eq!(violations(&r), vec!["referral.parenting_order"]);
        r.parenting_order = Some(pb::ParentingOrder {
            court: "Edinburgh Sheriff Court".into(),
            made_date: d(2026, 5, 1),
            expiry_date: d(2027, 5, 1),
            responsible_officer_organisation: "midlothian-yot".into(),
            responsible_officer_service: ResponsibleOfficerService::YouthOffendingTeam as i32,
            responsible_officer_name: String::new(),
        });
        assert!(violations(&r).is_empty(), "exactly 12 months is allowed");
        r.parenting_order.as_mut().unwrap().expiry_date = d(2027, 5, 2);
        assert_eq!(violations(&r), vec!["referral.parenting_order.expiry_date"]);
        r.route = Route::Voluntary as i32;
        let got = violations(&r);
        assert!(
            got.contains(&"referral.parenting_order".to_owned()),
            "{got:?}"
        );
    }

    #[test]
    fn voluntary_referrals_need_consent_unless_safeguarding() {
        let mut r = valid();
        r.consents.clear();
        assert_eq!(violations(&r), vec!["referral.consents"]);
        r.safeguarding_concern = true;
        assert!(violations(&r).is_empty());
    }

    #[test]
    fn reasons_are_required_known_and_not_repeated() {
        let mut r = valid();
        r.reasons = vec![Reason::Sleep as i32, Reason::Sleep as i32, 500];
        assert_eq!(
            violations(&r),
            vec!["referral.reasons[1]", "referral.reasons[2]"]
        );
        r.reasons.clear();
        assert_eq!(violations(&r), vec!["referral.reasons"]);
    }

    #[test]
    fn consent_names_parse_into_both_ids() {
        let mut v = Violations::new();
        let (r, c) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            consent_name(&mut v, "name", &format!("referrals/{r}/consents/{c}")),
            (r, c)
        );
        assert!(v.is_empty());
        consent_name(&mut v, "name", &format!("referrals/{r}/contacts/{c}"));
        assert_eq!(v.fields().collect::<Vec<_>>(), ["name"]);
    }
}
