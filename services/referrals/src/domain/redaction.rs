//! Which parts of a record each role receives: one table, for every role and
//! resource, checked row by row by the `redaction` integration tests. A caller with
//! several roles receives what any of them does. Access comes first: a role that no
//! relationship admits (analyst, admin, dpo) gets no family's records at all, so its
//! rows say so, and an analyst never receives a direct identifier from any RPC.

use hearth_platform::Role;

/// A resource the service returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Referral,
    Family,
}

/// The parts of a referral or family a role may receive. What is not listed here (its
/// name, area, codes, states and times) every caller who may see the record receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Names, dates of birth and due dates, ethnicity, parenting roles.
    Identity,
    /// Children's NHS numbers.
    NhsNumber,
    /// Phone numbers, email addresses, preferred contact methods, the postal address,
    /// the referrer's engagement note.
    Contact,
    /// The referrer's name, job title and contact.
    Referrer,
    /// Free text about the family: the description, contact notes, decision reasons.
    Narrative,
    /// Consents: who gave them, for whom, withdrawals and their reasons.
    Consents,
    /// The Parenting Order: court, dates, responsible officer, the parents it binds.
    Order,
    /// Language, interpreter, accessibility, crèche, transport and time needs.
    AccessNeeds,
}

use Part::*;

const EVERYTHING: &[Part] = &[
    Identity,
    NhsNumber,
    Contact,
    Referrer,
    Narrative,
    Consents,
    Order,
    AccessNeeds,
];

/// The table: role, resource, the parts it receives.
pub const TABLE: &[(Role, Resource, &[Part])] = &[
    // The referrer made the referral: everything it says.
    (Role::Referrer, Resource::Referral, EVERYTHING),
    (
        Role::Referrer,
        Resource::Family,
        &[Identity, NhsNumber, Contact],
    ),
    // Triage decides on everything.
    (Role::Triage, Resource::Referral, EVERYTHING),
    (
        Role::Triage,
        Resource::Family,
        &[Identity, NhsNumber, Contact],
    ),
    // A practitioner works with the family: everything but the NHS number (health's
    // identifier, for matching, not for their work).
    (
        Role::Practitioner,
        Resource::Referral,
        &[
            Identity,
            Contact,
            Referrer,
            Narrative,
            Consents,
            Order,
            AccessNeeds,
        ],
    ),
    (Role::Practitioner, Resource::Family, &[Identity, Contact]),
    // A coordinator arranges places: who, how to reach them, what they need, and the
    // consents and orders places rest on; not the NHS number or the narrative.
    (
        Role::Coordinator,
        Resource::Referral,
        &[Identity, Contact, Referrer, Consents, Order, AccessNeeds],
    ),
    (Role::Coordinator, Resource::Family, &[Identity, Contact]),
    // No relationship admits these roles: nothing.
    (Role::Analyst, Resource::Referral, &[]),
    (Role::Analyst, Resource::Family, &[]),
    (Role::Admin, Resource::Referral, &[]),
    (Role::Admin, Resource::Family, &[]),
    (Role::Dpo, Resource::Referral, &[]),
    (Role::Dpo, Resource::Family, &[]),
];

/// The parts a caller with `roles` receives of `resource`.
pub fn parts(roles: &[Role], resource: Resource) -> Vec<Part> {
    let mut out: Vec<Part> = TABLE
        .iter()
        .filter(|(role, res, _)| roles.contains(role) && *res == resource)
        .flat_map(|(_, _, parts)| parts.iter().copied())
        .collect();
    out.sort_by_key(|p| *p as u8);
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_a_row_for_every_resource() {
        for role in Role::ALL {
            for resource in [Resource::Referral, Resource::Family] {
                let rows = TABLE
                    .iter()
                    .filter(|(r, res, _)| *r == role && *res == resource)
                    .count();
                assert_eq!(rows, 1, "{role:?} {resource:?}");
            }
        }
    }

    #[test]
    fn an_analyst_never_receives_a_direct_identifier() {
        for resource in [Resource::Referral, Resource::Family] {
            let got = parts(&[Role::Analyst], resource);
            assert!(
                !got.iter()
                    .any(|p| matches!(p, Identity | NhsNumber | Contact | Referrer | Narrative)),
                "{resource:?}: {got:?}"
            );
        }
    }

    #[test]
    fn several_roles_receive_what_any_of_them_does() {
        let got = parts(&[Role::Coordinator, Role::Triage], Resource::Referral);
        assert_eq!(got, EVERYTHING);
    }
}
