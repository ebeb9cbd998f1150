//! From the domain to the wire: resource names and protobuf messages.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use hearth_proto::referrals as pb;
use hearth_proto::types::Date;
use uuid::Uuid;

use crate::domain::redaction::Part;
use crate::domain::*;

pub fn referral_name(id: Uuid) -> String {
    format!("referrals/{id}")
}

/// The id in a referral's resource name `referrals/{id}`.
pub fn referral_id(name: &str) -> Option<Uuid> {
    name.strip_prefix("referrals/")
        .and_then(|id| Uuid::parse_str(id).ok())
}

pub fn family_name(id: Uuid) -> String {
    format!("families/{id}")
}

pub fn member_name(family: Uuid, member: Uuid) -> String {
    format!("families/{family}/members/{member}")
}

pub fn consent_name(referral: Uuid, consent: Uuid) -> String {
    format!("referrals/{referral}/consents/{consent}")
}

pub fn contact_name(referral: Uuid, contact: Uuid) -> String {
    format!("referrals/{referral}/contacts/{contact}")
}

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn date(d: NaiveDate) -> Date {
    Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

pub fn child(family: Uuid, c: &Child) -> pb::Child {
    pb::Child {
        member_name: member_name(family, c.member_id),
        given_name: c.given_name.clone(),
        family_name: c.family_name.clone(),
        date_of_birth: c.date_of_birth.map(date),
        due_date: c.due_date.map(date),
        nhs_number: c.nhs_number.clone().unwrap_or_default(),
        ethnicity: c.ethnicity.clone(),
    }
}

pub fn adult(family: Uuid, a: &Adult) -> pb::Adult {
    pb::Adult {
        member_name: member_name(family, a.member_id),
        given_name: a.given_name.clone(),
        family_name: a.family_name.clone(),
        role: a.role as i32,
        date_of_birth: a.date_of_birth.map(date),
        ethnicity: a.ethnicity.clone(),
        phone: a.phone.clone(),
        email: a.email.clone(),
        preferred_contact_method: a.preferred_contact as i32,
    }
}

/// Member ids as `families/{family}/members/{member}` names.
pub fn member_names(family: Uuid, members: &[Uuid]) -> Vec<String> {
    members.iter().map(|m| member_name(family, *m)).collect()
}

pub fn parenting_order(family: Uuid, o: &ParentingOrder) -> pb::ParentingOrder {
    pb::ParentingOrder {
        court: o.court.clone(),
        made_date: Some(date(o.made)),
        expiry_date: Some(date(o.expires)),
        responsible_officer_organisation: o.officer_org.clone(),
        responsible_officer_service: o.officer_service as i32,
        responsible_officer_name: o.officer_name.clone(),
        bound_members: member_names(family, &o.bound_members),
        bound_adult_indexes: vec![],
    }
}

pub fn access_needs(a: &AccessNeeds) -> pb::AccessNeeds {
    pb::AccessNeeds {
        language: a.language.clone(),
        interpreter_needed: a.interpreter,
        accessibility: a.accessibility.clone(),
        creche_needed: a.creche,
        transport_needed: a.transport,
        preferred_times: a.preferred_times.iter().map(|x| *x as i32).collect(),
    }
}

pub fn family_details(r: &Referral) -> pb::FamilyDetails {
    pb::FamilyDetails {
        children: r.children.iter().map(|c| child(r.family_id, c)).collect(),
        adults: r.adults.iter().map(|a| adult(r.family_id, a)).collect(),
    }
}

pub fn consent(referral: Uuid, family: Uuid, c: &Consent) -> pb::Consent {
    pb::Consent {
        name: consent_name(referral, c.id),
        given_by: c.given_by.clone(),
        given_by_role: c.given_by_role as i32,
        give_time: Some(ts(c.given_at)),
        scopes: c.scopes.iter().map(|s| *s as i32).collect(),
        withdraw_time: c.withdrawn_at.map(ts),
        withdraw_reason: c.withdraw_reason.clone(),
        members: member_names(family, &c.members),
        adult_indexes: vec![],
    }
}

pub fn contact(referral: Uuid, c: &Contact) -> pb::Contact {
    pb::Contact {
        name: contact_name(referral, c.id),
        method: c.method as i32,
        contact_time: Some(ts(c.at)),
        successful: c.successful,
        note: c.note.clone(),
        recorded_by: c.recorded_by.clone(),
    }
}

pub fn decision(d: &Decision) -> pb::Decision {
    pb::Decision {
        outcome: d.outcome as i32,
        decided_by_organisation: d.by_org.clone(),
        decided_by: d.by.clone(),
        decide_time: Some(ts(d.at)),
        reason: d.reason.clone(),
        decline_reason: d.decline_reason.map(|x| x as i32).unwrap_or_default(),
        destination: d.destination.clone(),
    }
}

/// The whole referral. `name` is empty for a validate-only preview.
pub fn referral(r: &Referral, with_name: bool) -> pb::Referral {
    pb::Referral {
        name: if with_name {
            referral_name(r.id)
        } else {
            String::new()
        },
        receiving_area: r.receiving_area.clone(),
        referring_organisation: r.referring_org.clone(),
        referrer: Some(pb::Referrer {
            display_name: r.referrer.name.clone(),
            job_title: r.referrer.job_title.clone(),
            contact: r.referrer.contact.clone(),
        }),
        source: r.source as i32,
        family: Some(family_details(r)),
        reasons: r.reasons.iter().map(|x| *x as i32).collect(),
        description: r.description.clone(),
        urgency: r.urgency as i32,
        safeguarding_concern: r.safeguarding,
        access_needs: Some(access_needs(&r.access)),
        postcode: r.postcode.clone(),
        consents: r
            .consents
            .iter()
            .map(|c| consent(r.id, r.family_id, c))
            .collect(),
        route: r.route as i32,
        parenting_order: r.order.as_ref().map(|o| parenting_order(r.family_id, o)),
        state: r.state as i32,
        decision: r.decision.as_ref().map(decision),
        contacts: r.contacts.iter().map(|c| contact(r.id, c)).collect(),
        family_name: if with_name {
            family_name(r.family_id)
        } else {
            String::new()
        },
        linked_to_existing_family: r.linked_existing,
        receive_time: Some(ts(r.received_at)),
        first_contact_time: r.first_contact_at.map(ts),
        decision_time: r.decided_at.map(ts),
        update_time: Some(ts(r.updated_at)),
        address_lines: r.address_lines.clone(),
        engagement_note: r.engagement_note.clone(),
    }
}

/// The no-personal-data reference every event carries.
pub fn reference(r: &Referral) -> pb::ReferralRef {
    pb::ReferralRef {
        referral: referral_name(r.id),
        family: family_name(r.family_id),
        receiving_area: r.receiving_area.clone(),
        referring_organisation: r.referring_org.clone(),
        source: r.source as i32,
        route: r.route as i32,
        safeguarding_concern: r.safeguarding,
    }
}

/// Blanks what `parts` does not list (`domain::redaction`).
pub fn redact_referral(r: &mut pb::Referral, parts: &[Part]) {
    let has = |p: Part| parts.contains(&p);
    if let Some(f) = r.family.as_mut() {
        redact_people(&mut f.children, &mut f.adults, parts);
    }
    if !has(Part::Contact) {
        r.address_lines.clear();
        r.engagement_note.clear();
    }
    if !has(Part::Referrer) {
        r.referrer = None;
    }
    if !has(Part::Narrative) {
        r.description.clear();
        for c in &mut r.contacts {
            c.note.clear();
        }
        if let Some(d) = r.decision.as_mut() {
            d.reason.clear();
            d.destination.clear();
        }
    }
    if !has(Part::Consents) {
        r.consents.clear();
    }
    if !has(Part::Order) {
        r.parenting_order = None;
    }
    if !has(Part::AccessNeeds) {
        r.access_needs = None;
    }
}

/// Blanks the people's parts `parts` does not list.
pub fn redact_people(children: &mut [pb::Child], adults: &mut [pb::Adult], parts: &[Part]) {
    let has = |p: Part| parts.contains(&p);
    for c in children.iter_mut() {
        if !has(Part::Identity) {
            c.given_name.clear();
            c.family_name.clear();
            c.date_of_birth = None;
            c.due_date = None;
            c.ethnicity.clear();
        }
        if !has(Part::NhsNumber) {
            c.nhs_number.clear();
        }
    }
    for a in adults.iter_mut() {
        if !has(Part::Identity) {
            a.given_name.clear();
            a.family_name.clear();
            a.date_of_birth = None;
            a.ethnicity.clear();
            a.role = 0;
        }
        if !has(Part::Contact) {
            a.phone.clear();
            a.email.clear();
            a.preferred_contact_method = 0;
        }
    }
}
