//! Who may see and change a referral. Deny by default.
//!
//! - The referring organisation sees the referrals it made (any role but analyst or
//!   admin: analysts see de-identified data only, admins configure).
//! - The receiving area's triage role sees every referral addressed to the area, and
//!   alone makes triage decisions and records contacts.
//! - A withdrawal or a consent may be recorded by the area's triage or by the referring
//!   organisation's referrers (families tell whoever they know).
//!
//! Anyone who may not see a referral gets NOT_FOUND, so its existence is not disclosed;
//! someone who sees it but lacks the role gets PERMISSION_DENIED.

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

pub fn can_see(caller: &Caller, p: Parties<'_>) -> bool {
    is_area_triage(caller, p)
        || (caller.organisation == p.referring_org && caller.has_any(&READER_ROLES))
}

pub fn is_area_triage(caller: &Caller, p: Parties<'_>) -> bool {
    caller.organisation == p.receiving_area && caller.has(Role::Triage)
}

/// Withdrawals and consents.
pub fn can_act_for_family(caller: &Caller, p: Parties<'_>) -> bool {
    is_area_triage(caller, p)
        || (caller.organisation == p.referring_org && caller.has(Role::Referrer))
}

/// Creating a referral: referrers, and triage officers taking one at the front door.
pub fn can_refer(caller: &Caller) -> bool {
    caller.has_any(&[Role::Referrer, Role::Triage])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(org: &str, roles: &[Role]) -> Caller {
        Caller {
            subject: "u".into(),
            organisation: org.into(),
            roles: roles.to_vec(),
        }
    }

    const P: Parties<'static> = Parties {
        referring_org: "school",
        receiving_area: "midlothian",
    };

    #[test]
    fn referring_org_and_area_triage_see_it_nobody_else_does() {
        assert!(can_see(&caller("school", &[Role::Referrer]), P));
        assert!(can_see(&caller("midlothian", &[Role::Triage]), P));
        assert!(
            !can_see(&caller("midlothian", &[Role::Practitioner]), P),
            "area staff without triage"
        );
        assert!(
            !can_see(&caller("police", &[Role::Triage]), P),
            "another area's triage"
        );
        assert!(
            !can_see(&caller("school", &[Role::Analyst]), P),
            "analysts see no personal data"
        );
        assert!(!can_see(&caller("school", &[]), P), "no role, no access");
    }

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
}
