//! Who may change a referral. Who may *see* one is the kit's access model
//! (`hearth_platform::access`: the referring organisation, the receiving area, the
//! family's team, a provider, a responsible officer, an emergency grant); anyone who
//! may not see it gets NOT_FOUND. Of those who see it:
//!
//! - the receiving area's triage role alone makes triage decisions and records
//!   contacts;
//! - a withdrawal, a consent, a Parenting Order or a correction to the family's details
//!   may be recorded by the area's triage or by the referring organisation's referrers
//!   (families tell whoever they know);
//! - anyone else gets PERMISSION_DENIED.

use hearth_platform::access::Basis;
use hearth_platform::{Caller, Role};

/// Roles through which a referring organisation's staff see its referrals.
pub const READER_ROLES: [Role; 4] = [
    Role::Referrer,
    Role::Triage,
    Role::Practitioner,
    Role::Coordinator,
];

/// The parties of a referral, as access rules need them.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    pub referring_org: &'a str,
    pub receiving_area: &'a str,
}

pub fn is_area_triage(caller: &Caller, p: Parties<'_>) -> bool {
    caller.organisation == p.receiving_area && caller.has(Role::Triage)
}

/// Withdrawals and consents.
pub fn can_act_for_family(caller: &Caller, p: Parties<'_>) -> bool {
    is_area_triage(caller, p)
        || (caller.organisation == p.referring_org && caller.has(Role::Referrer))
}

/// Who may make a change, of those who see the referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The receiving area's triage role alone: decisions and contacts.
    AreaTriage,
    /// The area's triage or the referring organisation's referrer: what a family
    /// tells whoever they know.
    ForFamily,
}

/// The relationship a change by `actor` rests on, for its audit record: the one
/// whose role the change needs (the area's triage, else the referring
/// organisation's referrer), not merely the first the caller holds. `None`: the
/// caller may not make it.
pub fn acting_basis(caller: &Caller, p: Parties<'_>, actor: Actor) -> Option<Basis> {
    if is_area_triage(caller, p) {
        Some(Basis::ReceivingArea)
    } else if actor == Actor::ForFamily && can_act_for_family(caller, p) {
        Some(Basis::ReferringOrganisation)
    } else {
        None
    }
}

/// Creating a referral: referrers, and triage officers taking one at the front door.
pub fn can_refer(caller: &Caller) -> bool {
    caller.has_any(&[Role::Referrer, Role::Triage])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(org: &str, roles: &[Role]) -> Caller {
        Caller::new("u", org, roles)
    }

    const P: Parties<'static> = Parties {
        referring_org: "school",
        receiving_area: "midlothian",
    };

    #[test]
    fn only_area_triage_decides_and_referrers_may_withdraw() {
        assert!(is_area_triage(&caller("midlothian", &[Role::Triage]), P));
        assert!(!is_area_triage(&caller("school", &[Role::Triage]), P));
        assert!(can_act_for_family(&caller("school", &[Role::Referrer]), P));
        assert!(!can_act_for_family(
            &caller("school", &[Role::Practitioner]),
            P
        ));
    }

    #[test]
    fn a_change_is_recorded_on_the_relationship_whose_role_it_needs() {
        // The area referring a family to itself decides as the area's triage.
        let own = Parties {
            referring_org: "midlothian",
            receiving_area: "midlothian",
        };
        let triage = caller("midlothian", &[Role::Triage]);
        assert_eq!(
            acting_basis(&triage, own, Actor::ForFamily),
            Some(Basis::ReceivingArea)
        );
        let referrer = caller("school", &[Role::Referrer]);
        assert_eq!(
            acting_basis(&referrer, P, Actor::ForFamily),
            Some(Basis::ReferringOrganisation)
        );
        assert_eq!(acting_basis(&referrer, P, Actor::AreaTriage), None);
        let school_triage = caller("school", &[Role::Triage]);
        assert_eq!(acting_basis(&school_triage, P, Actor::ForFamily), None);
    }
}
