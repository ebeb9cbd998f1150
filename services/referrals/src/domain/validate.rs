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
/// A postal address: up to 5 lines of up to 100 characters (our default, a letter's).
pub const MAX_ADDRESS_LINES: usize = 5;
const ADDRESS_LINE_LEN: usize = 100;
const ENGAGEMENT_NOTE_LEN: usize = 500;
/// RFC 5321's limit on an address's length.
const EMAIL_LEN: usize = 254;
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

/// How a consent or a Parenting Order names the adults it covers or binds.
#[derive(Debug, Clone, Copy)]
pub enum Naming<'a> {
    /// On CreateReferral members have no names yet: by 0-based position in the
    /// referral's adults (`adult_indexes`, `bound_adult_indexes`).
    Positions(&'a [Adult]),
    /// On a stored referral: by member name, `families/{family}/members/{member}`.
    Names { family: Uuid, adults: &'a [Adult] },
}

impl Naming<'_> {
    fn adults(&self) -> &[Adult] {
        match self {
            Naming::Positions(a) | Naming::Names { adults: a, .. } => a,
        }
    }
}

/// The adults a consent covers or an order binds, as member ids. `names` and
/// `positions` are the request's two ways of naming them (`path` is the field of
/// each); `naming` says which one this call takes. Empty means every adult when not
/// `required`.
fn named_adults(
    v: &mut Violations,
    (names_path, names): (&str, &[String]),
    (positions_path, positions): (&str, &[i32]),
    naming: Naming<'_>,
    required: bool,
) -> Vec<Uuid> {
    let adults = naming.adults();
    let mut out: Vec<Uuid> = Vec::new();
    let mut add = |v: &mut Violations, field: String, id: Option<Uuid>| match id {
        Some(id) if out.contains(&id) => v.add(field, "is repeated"),
        Some(id) => out.push(id),
        None => v.add(field, "is not an adult named on this referral"),
    };
    let (given, other, other_path) = match naming {
        Naming::Positions(_) => {
            for (i, n) in positions.iter().enumerate() {
                let id = usize::try_from(*n)
                    .ok()
                    .and_then(|n| adults.get(n))
                    .map(|a| a.member_id);
                add(v, format!("{positions_path}[{i}]"), id);
            }
            (positions.len(), names.len(), names_path)
        }
        Naming::Names { family, .. } => {
            for (i, name) in names.iter().enumerate() {
                let id = name
                    .strip_prefix(&format!("families/{family}/members/"))
                    .and_then(|m| Uuid::parse_str(m).ok())
                    .filter(|m| adults.iter().any(|a| a.member_id == *m));
                add(v, format!("{names_path}[{i}]"), id);
            }
            (names.len(), positions.len(), positions_path)
        }
    };
    if other > 0 {
        let how = match naming {
            Naming::Positions(_) => {
                "must be empty when creating a referral: name the adults by position"
            }
            Naming::Names { .. } => {
                "is only for creating a referral: name the adults by member name"
            }
        };
        v.add(other_path, how);
    }
    if given > MAX_ADULTS {
        v.add(
            match naming {
                Naming::Positions(_) => positions_path,
                Naming::Names { .. } => names_path,
            },
            format!("at most {MAX_ADULTS} adults"),
        );
    }
    if given == 0 {
        if required {
            v.add(
                match naming {
                    Naming::Positions(_) => positions_path,
                    Naming::Names { .. } => names_path,
                },
                "is required: at least one adult named on the referral",
            );
        } else {
            out = adults.iter().map(|a| a.member_id).collect();
        }
    }
    out
}

/// A consent as given in a request, covering the adults it names (every adult when
/// it names none). Without `naming` (the referral is not loaded yet) the adults are
/// left for [`consent_members`].
pub fn consent(
    v: &mut Violations,
    path: &str,
    c: &pb::Consent,
    now: DateTime<Utc>,
    naming: Option<Naming<'_>>,
) -> Consent {
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
    let members = naming
        .map(|naming| consent_members(v, path, c, naming))
        .unwrap_or_default();
    Consent {
        id: new_id(now),
        given_by,
        given_by_role: role,
        given_at,
        scopes,
        members,
        withdrawn_at: None,
        withdraw_reason: String::new(),
    }
}

/// The adults a consent given in a request covers.
pub fn consent_members(
    v: &mut Violations,
    path: &str,
    c: &pb::Consent,
    naming: Naming<'_>,
) -> Vec<Uuid> {
    named_adults(
        v,
        (&format!("{path}.members"), &c.members),
        (&format!("{path}.adult_indexes"), &c.adult_indexes),
        naming,
        false,
    )
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

/// The family's postal address: up to 5 lines, none empty.
fn address(v: &mut Violations, path: &str, lines: &[String]) -> Vec<String> {
    if lines.len() > MAX_ADDRESS_LINES {
        v.add(path, format!("at most {MAX_ADDRESS_LINES} lines"));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| text(v, &format!("{path}[{i}]"), l, true, ADDRESS_LINE_LEN))
        .collect()
}

/// An email address: no spaces, one `@` with text on both sides, at most 254
/// characters. Optional.
fn email(v: &mut Violations, path: &str, raw: &str) -> String {
    let e = raw.trim();
    let shape = e.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    });
    if !e.is_empty() && (e.len() > EMAIL_LEN || e.chars().any(char::is_whitespace) || !shape) {
        v.add(path, "is not an email address (one @ with text on both sides, no spaces, at most 254 characters)");
    }
    e.to_owned()
}

/// The adult can be reached the way they prefer: a phone for calls and texts, an
/// email address for email, an address for letters and home visits.
fn reachable(v: &mut Violations, path: &str, a: &Adult, address: &[String]) {
    let (ok, needs) = match a.preferred_contact {
        ContactMethod::Phone | ContactMethod::TextMessage => (!a.phone.is_empty(), "a phone"),
        ContactMethod::Email => (!a.email.is_empty(), "an email address"),
        ContactMethod::Letter | ContactMethod::HomeVisit => {
            (!address.is_empty(), "the family's address_lines")
        }
        ContactMethod::InPerson | ContactMethod::VideoCall | ContactMethod::Unspecified => {
            (true, "")
        }
    };
    if !ok {
        v.add(
            format!("{path}.preferred_contact_method"),
            format!("needs {needs} to reach them that way"),
        );
    }
}

/// What the family needs in order to take part.
fn access_needs(v: &mut Violations, ap: &str, a: Option<&pb::AccessNeeds>) -> AccessNeeds {
    let Some(a) = a else {
        return AccessNeeds::default();
    };
    let language = text(v, &format!("{ap}.language"), &a.language, false, 35);
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
        let t: PreferredTime = required_enum(v, &format!("{ap}.preferred_times[{i}]"), *raw);
        if !preferred_times.contains(&t) {
            preferred_times.push(t);
        }
    }
    AccessNeeds {
        language,
        interpreter: a.interpreter_needed,
        accessibility: text(
            v,
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

    let address_lines = address(&mut v, &format!("{p}.address_lines"), &r.address_lines);
    let (children, adults) = match &r.family {
        None => {
            v.add(format!("{p}.family"), "is required");
            (vec![], vec![])
        }
        Some(f) => family(&mut v, &format!("{p}.family"), f, now),
    };
    for (i, a) in adults.iter().enumerate() {
        reachable(
            &mut v,
            &format!("{p}.family.adults[{i}]"),
            a,
            &address_lines,
        );
    }

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
    let access = access_needs(
        &mut v,
        &format!("{p}.access_needs"),
        r.access_needs.as_ref(),
    );
    let postcode =
        hearth_platform::validate::uk_postcode(&mut v, &format!("{p}.postcode"), &r.postcode, true);
    let engagement_note = text(
        &mut v,
        &format!("{p}.engagement_note"),
        &r.engagement_note,
        false,
        ENGAGEMENT_NOTE_LEN,
    );

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
        .map(|(i, c)| {
            consent(
                &mut v,
                &format!("{p}.consents[{i}]"),
                c,
                now,
                Some(Naming::Positions(&adults)),
            )
        })
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
        (Route::CourtOrdered, Some(o)) => parenting_order(
            &mut v,
            &format!("{p}.parenting_order"),
            o,
            today,
            Naming::Positions(&adults),
        ),
        (_, Some(_)) => {
            v.add(
                format!("{p}.parenting_order"),
                "must be empty unless the route is court-ordered (record a later order with RecordParentingOrder)",
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
        address_lines,
        engagement_note,
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

/// A child as given in a request. `before`: the child as the referral holds it (a
/// correction), whose unchanged dates are not held to today's rules again.
fn child(
    v: &mut Violations,
    cp: &str,
    c: &pb::Child,
    now: DateTime<Utc>,
    before: Option<&Child>,
) -> Child {
    let today = now.date_naive();
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
    let new_dob = dob.is_some() && dob != before.and_then(|b| b.date_of_birth);
    let new_due = due.is_some() && due != before.and_then(|b| b.due_date);
    if new_dob && dob.is_some_and(|d| d > today) {
        v.add(format!("{cp}.date_of_birth"), "must not be in the future");
    }
    if new_dob && dob.is_some_and(|d| d.year() < today.year() - 25) {
        v.add(
            format!("{cp}.date_of_birth"),
            "is more than 25 years ago: a child is expected",
        );
    }
    if new_due && due.is_some_and(|d| d < today) {
        v.add(format!("{cp}.due_date"), "must not be in the past");
    }
    if new_due && due.is_some_and(|d| d > today + chrono::Duration::days(300)) {
        v.add(format!("{cp}.due_date"), "must be within the next 300 days");
    }
    if before.is_some_and(|b| b.date_of_birth.is_some()) && dob.is_none() {
        v.add(
            format!("{cp}.due_date"),
            "a child who has been born cannot become unborn again; correct the date of birth",
        );
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
    Child {
        member_id: before.map_or_else(|| new_id(now), |b| b.member_id),
        given_name,
        family_name,
        date_of_birth: dob,
        due_date: due,
        nhs_number,
        ethnicity: text(v, &format!("{cp}.ethnicity"), &c.ethnicity, false, 60),
    }
}

/// An adult as given in a request; `before` as for [`child`].
fn adult(
    v: &mut Violations,
    ap: &str,
    a: &pb::Adult,
    now: DateTime<Utc>,
    before: Option<&Adult>,
) -> Adult {
    let dob = a
        .date_of_birth
        .as_ref()
        .and_then(|d| date(v, &format!("{ap}.date_of_birth"), d));
    let changed = dob.is_some() && dob != before.and_then(|b| b.date_of_birth);
    if changed && dob.is_some_and(|d| d > now.date_naive()) {
        v.add(format!("{ap}.date_of_birth"), "must not be in the future");
    }
    Adult {
        member_id: before.map_or_else(|| new_id(now), |b| b.member_id),
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
        email: email(v, &format!("{ap}.email"), &a.email),
        preferred_contact: optional_enum(
            v,
            &format!("{ap}.preferred_contact_method"),
            a.preferred_contact_method,
        ),
    }
}

/// An optional enum: unset, or a value this version knows.
fn optional_enum<E: TryFrom<i32> + Default>(v: &mut Violations, field: &str, raw: i32) -> E {
    E::try_from(raw).unwrap_or_else(|_| {
        v.add(field, format!("unknown value {raw}"));
        E::default()
    })
}

/// Each person once: the same NHS number, or the same name and date of birth, twice
/// in one family is a mistake that would otherwise merge into one person.
fn no_repeated_people(v: &mut Violations, p: &str, children: &[Child], adults: &[Adult]) {
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
}

fn family(
    v: &mut Violations,
    p: &str,
    f: &pb::FamilyDetails,
    now: DateTime<Utc>,
) -> (Vec<Child>, Vec<Adult>) {
    family_size(v, p, f);
    let children: Vec<Child> = f
        .children
        .iter()
        .enumerate()
        .take(MAX_CHILDREN)
        .map(|(i, c)| child(v, &format!("{p}.children[{i}]"), c, now, None))
        .collect();
    let adults: Vec<Adult> = f
        .adults
        .iter()
        .enumerate()
        .take(MAX_ADULTS)
        .map(|(i, a)| adult(v, &format!("{p}.adults[{i}]"), a, now, None))
        .collect();
    no_repeated_people(v, p, &children, &adults);
    (children, adults)
}

fn family_size(v: &mut Violations, p: &str, f: &pb::FamilyDetails) {
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
}

/// A Parenting Order as given in a request: made by a court, for up to 12 months,
/// not already expired, binding the adults it names.
pub fn parenting_order(
    v: &mut Violations,
    p: &str,
    o: &pb::ParentingOrder,
    today: NaiveDate,
    naming: Naming<'_>,
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
        } else if e < today {
            v.add(
                format!("{p}.expiry_date"),
                "the order has expired: an expired order cannot be recorded",
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
    let bound_members = named_adults(
        v,
        (&format!("{p}.bound_members"), &o.bound_members),
        (&format!("{p}.bound_adult_indexes"), &o.bound_adult_indexes),
        naming,
        true,
    );
    Some(ParentingOrder {
        court,
        made: made?,
        expires: expires?,
        officer_org,
        officer_service,
        officer_name,
        bound_members,
    })
}

/// A correction to a family's details (CorrectFamilyDetails): the parts the mask
/// names, each whole and validated as on create, against the referral as it is.
pub fn correction(
    req: &pb::CorrectFamilyDetailsRequest,
    r: &Referral,
    now: DateTime<Utc>,
) -> Result<Correction, Violations> {
    let mut v = Violations::new();
    let p = "referral";
    let reason: CorrectionReason = required_enum(&mut v, "reason", req.reason);
    let paths: Vec<&str> = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.iter().map(String::as_str).collect())
        .unwrap_or_default();
    if paths.is_empty() {
        v.add(
            "update_mask",
            "is required: name the parts to correct (family.children, family.adults, address_lines, postcode, engagement_note, access_needs)",
        );
    }
    for (i, path) in paths.iter().enumerate() {
        if !CORRECTABLE.contains(path) {
            v.add(
                format!("update_mask.paths[{i}]"),
                "is not a part that can be corrected: family.children, family.adults, address_lines, postcode, engagement_note or access_needs",
            );
        }
    }
    let given = req.referral.clone().unwrap_or_default();
    let wants = |path: &str| paths.contains(&path);
    let family = given.family.clone().unwrap_or_default();
    let mut c = Correction {
        reason,
        ..Correction::default()
    };
    if wants("family.children") {
        c.children = Some(corrected_people(
            &mut v,
            &format!("{p}.family.children"),
            r.family_id,
            &family.children,
            &r.children,
            |v, path, x: &pb::Child, before| child(v, path, x, now, before),
            |x| &x.member_name,
            |x| x.member_id,
        ));
    }
    if wants("family.adults") {
        c.adults = Some(corrected_people(
            &mut v,
            &format!("{p}.family.adults"),
            r.family_id,
            &family.adults,
            &r.adults,
            |v, path, x: &pb::Adult, before| adult(v, path, x, now, before),
            |x| &x.member_name,
            |x| x.member_id,
        ));
    }
    if wants("family.children") || wants("family.adults") {
        if c.children.as_ref().is_some_and(Vec::is_empty) {
            v.add(
                format!("{p}.family.children"),
                "at least one child (or unborn child) is required",
            );
        }
        if c.children.as_ref().is_some_and(|x| x.len() > MAX_CHILDREN) {
            v.add(
                format!("{p}.family.children"),
                format!("at most {MAX_CHILDREN} children"),
            );
        }
        if c.adults.as_ref().is_some_and(|x| x.len() > MAX_ADULTS) {
            v.add(
                format!("{p}.family.adults"),
                format!("at most {MAX_ADULTS} adults"),
            );
        }
        no_repeated_people(
            &mut v,
            &format!("{p}.family"),
            c.children.as_deref().unwrap_or(&r.children),
            c.adults.as_deref().unwrap_or(&r.adults),
        );
    }
    if wants("address_lines") {
        c.address_lines = Some(address(
            &mut v,
            &format!("{p}.address_lines"),
            &given.address_lines,
        ));
    }
    if wants("family.adults") || wants("address_lines") {
        let lines = c.address_lines.as_deref().unwrap_or(&r.address_lines);
        for (i, a) in c.adults.as_deref().unwrap_or(&r.adults).iter().enumerate() {
            reachable(&mut v, &format!("{p}.family.adults[{i}]"), a, lines);
        }
    }
    if wants("postcode") {
        c.postcode = Some(hearth_platform::validate::uk_postcode(
            &mut v,
            &format!("{p}.postcode"),
            &given.postcode,
            true,
        ));
    }
    if wants("engagement_note") {
        c.engagement_note = Some(text(
            &mut v,
            &format!("{p}.engagement_note"),
            &given.engagement_note,
            false,
            ENGAGEMENT_NOTE_LEN,
        ));
    }
    if wants("access_needs") {
        c.access = Some(access_needs(
            &mut v,
            &format!("{p}.access_needs"),
            given.access_needs.as_ref(),
        ));
    }
    v.into_result(c)
}

/// The mask paths a correction may name, in the contract's order.
pub const CORRECTABLE: [&str; 6] = [
    "family.children",
    "family.adults",
    "address_lines",
    "postcode",
    "engagement_note",
    "access_needs",
];

/// A corrected list of people: each already on the referral given again with its
/// member name (nobody removed), a new one without.
#[allow(clippy::too_many_arguments)]
fn corrected_people<In, Out: Clone>(
    v: &mut Violations,
    path: &str,
    family: Uuid,
    given: &[In],
    before: &[Out],
    build: impl Fn(&mut Violations, &str, &In, Option<&Out>) -> Out,
    name_of: impl Fn(&In) -> &String,
    id_of: impl Fn(&Out) -> Uuid,
) -> Vec<Out> {
    let mut seen: Vec<Uuid> = Vec::new();
    let mut out = Vec::new();
    for (i, x) in given.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let name = name_of(x);
        let previous = if name.is_empty() {
            None
        } else {
            let found = name
                .strip_prefix(&format!("families/{family}/members/"))
                .and_then(|m| Uuid::parse_str(m).ok())
                .and_then(|m| before.iter().find(|b| id_of(b) == m));
            match found {
                Some(b) if seen.contains(&id_of(b)) => {
                    v.add(format!("{item}.member_name"), "is repeated");
                    None
                }
                Some(b) => {
                    seen.push(id_of(b));
                    Some(b)
                }
                None => {
                    v.add(
                        format!("{item}.member_name"),
                        "is not a member named in this part of the referral",
                    );
                    None
                }
            }
        };
        out.push(build(v, &item, x, previous));
    }
    if before.iter().any(|b| !seen.contains(&id_of(b))) {
        v.add(
            path,
            "must give again everyone already on the referral, with their member_name: nobody is removed",
        );
    }
    out
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
    fn parenting_orders_last_at_most_twelve_months_and_name_whom_they_bind() {
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
            bound_adult_indexes: vec![0],
            ..Default::default()
        });
        assert!(violations(&r).is_empty(), "exactly 12 months is allowed");
        let built = new_referral(&r, "yot", "u", now()).unwrap();
        assert_eq!(
            built.order.as_ref().unwrap().bound_members,
            [built.adults[0].member_id]
        );
        r.parenting_order.as_mut().unwrap().expiry_date = d(2027, 5, 2);
        assert_eq!(violations(&r), vec!["referral.parenting_order.expiry_date"]);
        // An order that has already expired cannot be recorded.
        let o = r.parenting_order.as_mut().unwrap();
        o.made_date = d(2025, 6, 1);
        o.expiry_date = d(2026, 6, 1);
        assert_eq!(violations(&r), vec!["referral.parenting_order.expiry_date"]);
        let o = r.parenting_order.as_mut().unwrap();
        o.made_date = d(2026, 5, 1);
        o.expiry_date = d(2027, 5, 1);
        // It binds someone on the referral, named by position, once.
        for (indexes, bad) in [
            (vec![], "referral.parenting_order.bound_adult_indexes"),
            (vec![1], "referral.parenting_order.bound_adult_indexes[0]"),
            (
                vec![0, 0],
                "referral.parenting_order.bound_adult_indexes[1]",
            ),
        ] {
            r.parenting_order.as_mut().unwrap().bound_adult_indexes = indexes;
            assert_eq!(violations(&r), vec![bad]);
        }
        r.parenting_order.as_mut().unwrap().bound_adult_indexes = vec![0];
        r.parenting_order.as_mut().unwrap().bound_members = vec!["families/x/members/y".into()];
        assert_eq!(
            violations(&r),
            vec!["referral.parenting_order.bound_members"]
        );
        r.parenting_order.as_mut().unwrap().bound_members.clear();
        r.route = Route::Voluntary as i32;
        let got = violations(&r);
        assert!(
            got.contains(&"referral.parenting_order".to_owned()),
            "{got:?}"
        );
    }

    #[test]
    fn consents_name_the_adults_they_cover_by_position_on_create() {
        let mut r = valid();
        let built = new_referral(&r, "nhs-lothian", "u", now()).unwrap();
        assert_eq!(
            built.consents[0].members,
            [built.adults[0].member_id],
            "none named: every adult"
        );
        r.consents[0].adult_indexes = vec![3];
        assert_eq!(
            violations(&r),
            vec!["referral.consents[0].adult_indexes[0]"]
        );
        r.consents[0].adult_indexes = vec![0];
        r.consents[0].members = vec!["families/x/members/y".into()];
        assert_eq!(violations(&r), vec!["referral.consents[0].members"]);
    }

    #[test]
    fn a_family_can_be_reached_the_way_each_adult_prefers() {
        let mut r = valid();
        let adult = &mut r.family.as_mut().unwrap().adults[0];
        adult.preferred_contact_method = ContactMethod::TextMessage as i32;
        assert_eq!(
            violations(&r),
            vec!["referral.family.adults[0].preferred_contact_method"],
            "a text needs a phone"
        );
        let adult = &mut r.family.as_mut().unwrap().adults[0];
        adult.phone = "07700 900123".into();
        assert!(violations(&r).is_empty());
        let adult = &mut r.family.as_mut().unwrap().adults[0];
        adult.preferred_contact_method = ContactMethod::Letter as i32;
        assert_eq!(
            violations(&r),
            vec!["referral.family.adults[0].preferred_contact_method"]
        );
        r.address_lines = vec!["12 Station Road".into(), "Dalkeith".into()];
        assert!(violations(&r).is_empty());
        let adult = &mut r.family.as_mut().unwrap().adults[0];
        adult.preferred_contact_method = ContactMethod::Email as i32;
        for bad in ["jo", "jo@", "@x.org", "jo@x@y.org", "jo reid@x.org"] {
            r.family.as_mut().unwrap().adults[0].email = bad.into();
            let got = violations(&r);
            assert!(
                got.contains(&"referral.family.adults[0].email".to_owned()),
                "{bad}: {got:?}"
            );
        }
        r.family.as_mut().unwrap().adults[0].email = "jo.reid@example.org".into();
        assert!(violations(&r).is_empty());
        r.address_lines = vec!["a".into(); 6];
        assert_eq!(violations(&r), vec!["referral.address_lines"]);
        r.address_lines = vec!["12 Station Road".into(), String::new()];
        assert_eq!(violations(&r), vec!["referral.address_lines[1]"]);
        r.address_lines.clear();
        r.engagement_note = "x".repeat(501);
        assert_eq!(violations(&r), vec!["referral.engagement_note"]);
    }

    fn stored() -> Referral {
        let mut r = valid();
        r.family.as_mut().unwrap().children = vec![pb::Child {
            due_date: d(2026, 9, 1),
            ..Default::default()
        }];
        new_referral(&r, "nhs-lothian", "u", now()).unwrap()
    }

    fn correct(r: &Referral, mask: &[&str], given: pb::Referral) -> Vec<String> {
        let req = pb::CorrectFamilyDetailsRequest {
            referral: Some(given),
            update_mask: Some(prost_types::FieldMask {
                paths: mask.iter().map(|p| (*p).to_owned()).collect(),
            }),
            request_id: String::new(),
            reason: CorrectionReason::Birth as i32,
            validate_only: false,
        };
        match correction(&req, r, now()) {
            Ok(_) => vec![],
            Err(v) => v.fields().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn a_birth_is_a_correction_and_nobody_is_removed() {
        let r = stored();
        let family = crate::convert::family_details(&r);
        let mut born = family.clone();
        let child = &mut born.children[0];
        child.due_date = None;
        child.date_of_birth = d(2026, 6, 10);
        child.given_name = "Isla".into();
        child.family_name = "Reid".into();
        let given = |f: pb::FamilyDetails| pb::Referral {
            family: Some(f),
            ..Default::default()
        };
        assert!(correct(&r, &["family.children"], given(born.clone())).is_empty());
        // Born, the child needs names.
        let mut nameless = born.clone();
        nameless.children[0].given_name.clear();
        assert_eq!(
            correct(&r, &["family.children"], given(nameless)),
            ["referral.family.children[0].given_name"]
        );
        // Nobody is removed; a stranger's member name is refused; a new child is added.
        let mut removed = born.clone();
        removed.children.clear();
        assert!(
            correct(&r, &["family.children"], given(removed))
                .contains(&"referral.family.children".to_owned())
        );
        let mut stranger = born.clone();
        stranger.children[0].member_name =
            format!("families/{}/members/{}", r.family_id, Uuid::now_v7());
        assert!(
            correct(&r, &["family.children"], given(stranger))
                .contains(&"referral.family.children[0].member_name".to_owned())
        );
        let mut sibling = born.clone();
        sibling.children.push(pb::Child {
            given_name: "Leo".into(),
            family_name: "Reid".into(),
            date_of_birth: d(2024, 1, 1),
            ..Default::default()
        });
        assert!(correct(&r, &["family.children"], given(sibling)).is_empty());
        // Unknown parts, and a missing mask, are named.
        assert_eq!(
            correct(&r, &["description"], given(born.clone())),
            ["update_mask.paths[0]"]
        );
        assert_eq!(correct(&r, &[], given(born)), ["update_mask"]);
    }

    #[test]
    fn a_born_child_cannot_become_unborn_and_unchanged_dates_are_not_rechecked() {
        let mut r = stored();
        r.children[0].due_date = None;
        r.children[0].date_of_birth = NaiveDate::from_ymd_opt(2026, 6, 1);
        r.children[0].given_name = "Isla".into();
        r.children[0].family_name = "Reid".into();
        let mut family = crate::convert::family_details(&r);
        family.children[0].date_of_birth = None;
        family.children[0].due_date = d(2026, 9, 1);
        let got = correct(
            &r,
            &["family.children"],
            pb::Referral {
                family: Some(family),
                ..Default::default()
            },
        );
        assert!(
            got.contains(&"referral.family.children[0].due_date".to_owned()),
            "{got:?}"
        );
        // A due date kept as it was is not held to "not in the past" again.
        let mut old = stored();
        old.children[0].due_date = NaiveDate::from_ymd_opt(2026, 6, 1);
        let mut family = crate::convert::family_details(&old);
        family.children[0].ethnicity = "WHITE_SCOTTISH".into();
        assert!(
            correct(
                &old,
                &["family.children"],
                pb::Referral {
                    family: Some(family),
                    ..Default::default()
                }
            )
            .is_empty()
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
