//! The outcome matrix of SPEC §3: how each source customer lands on the
//! destination, and what an admin must do about it. Pure: the copy engine
//! loads the facts, this decides.

use rustc_hash::FxHashMap as HashMap;

use crate::model::AccountType;

/// A customer of the source site, as the copy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCustomer {
    /// The account's id in the store.
    pub account_id: i64,
    pub kind: AccountType,
    /// The spelling the source wrote.
    pub email: String,
    pub email_key: String,
    pub active: bool,
    pub email_verified: bool,
}

/// An account already on the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationAccount {
    pub account_id: i64,
    pub active: bool,
    pub email_verified: bool,
}

/// What the destination holds, by normalized email.
#[derive(Debug, Clone, Default)]
pub struct DestinationIndex {
    /// Portal-only accounts of the destination that are not merged.
    pub portal_by_email: HashMap<String, DestinationAccount>,
    /// Atlassian accounts that are site users of the destination.
    pub atlassian_by_email: HashMap<String, DestinationAccount>,
    /// Source account -> destination account of earlier runs between the
    /// same two sites.
    pub linked: HashMap<i64, i64>,
}

/// The account types a site holds for one email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TypesHeld {
    None,
    PortalOnly,
    Atlassian,
    Both,
}

impl TypesHeld {
    pub fn of(portal: bool, atlassian: bool) -> TypesHeld {
        match (portal, atlassian) {
            (false, false) => TypesHeld::None,
            (true, false) => TypesHeld::PortalOnly,
            (false, true) => TypesHeld::Atlassian,
            (true, true) => TypesHeld::Both,
        }
    }

    /// The label reports use, exactly as SPEC §3 writes it.
    pub fn label(self) -> &'static str {
        match self {
            TypesHeld::None => "None",
            TypesHeld::PortalOnly => "Portal-only",
            TypesHeld::Atlassian => "Atlassian account",
            TypesHeld::Both => "Portal-only and Atlassian account",
        }
    }

    /// Holds a portal-only account for the email.
    pub fn has_portal_only(self) -> bool {
        matches!(self, TypesHeld::PortalOnly | TypesHeld::Both)
    }

    /// Holds an Atlassian account for the email.
    pub fn has_atlassian(self) -> bool {
        matches!(self, TypesHeld::Atlassian | TypesHeld::Both)
    }

    pub fn parse(label: &str) -> Option<TypesHeld> {
        [TypesHeld::None, TypesHeld::PortalOnly, TypesHeld::Atlassian, TypesHeld::Both]
            .into_iter()
            .find(|t| t.label() == label)
    }
}

/// Rows of the matrix, plus the re-run case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// 1: portal-only, nothing on destination: a new portal-only account.
    NewPortalOnly,
    /// 2: portal-only on both: the existing portal-only account.
    ExistingPortalOnly,
    /// 3: portal-only, Atlassian account on destination: that account, in
    /// the run's imported group awaiting review.
    MatchedAtlassian,
    /// 4: Atlassian account, nothing on destination: it becomes a site user.
    NewSiteUser,
    /// 5: the same Atlassian account on both.
    ExistingSiteUser,
    /// 6: Atlassian account, portal-only on destination: both remain.
    BesidePortalOnly,
    /// Copied by an earlier run between the same sites; nothing to do.
    AlreadyCopied,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::NewPortalOnly,
        Outcome::ExistingPortalOnly,
        Outcome::MatchedAtlassian,
        Outcome::NewSiteUser,
        Outcome::ExistingSiteUser,
        Outcome::BesidePortalOnly,
        Outcome::AlreadyCopied,
    ];

    /// The text of the `Outcome` column of Customers.csv.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::NewPortalOnly => "1: new portal-only account",
            Outcome::ExistingPortalOnly => "2: existing portal-only account",
            Outcome::MatchedAtlassian => "3: matched Atlassian account, group awaiting review",
            Outcome::NewSiteUser => "4: Atlassian account added as site user",
            Outcome::ExistingSiteUser => "5: Atlassian account already a site user",
            Outcome::BesidePortalOnly => "6: Atlassian account beside a portal-only account",
            Outcome::AlreadyCopied => "already copied by an earlier run",
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Outcome::NewPortalOnly => 1,
            Outcome::ExistingPortalOnly => 2,
            Outcome::MatchedAtlassian => 3,
            Outcome::NewSiteUser => 4,
            Outcome::ExistingSiteUser => 5,
            Outcome::BesidePortalOnly => 6,
            Outcome::AlreadyCopied => 0,
        }
    }

    pub fn from_code(code: i64) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.code() == code)
    }
}

/// Every reason a customer could lose access, with the texts reports use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Problem {
    PortalMatchedAtlassian,
    DuplicateAccounts,
    UnverifiedAtlassian,
    InactiveOnSource,
    InactiveOnDestination,
}

impl Problem {
    pub const ALL: [Problem; 5] = [
        Problem::PortalMatchedAtlassian,
        Problem::DuplicateAccounts,
        Problem::UnverifiedAtlassian,
        Problem::InactiveOnSource,
        Problem::InactiveOnDestination,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Problem::PortalMatchedAtlassian => "Portal-only customer matched an Atlassian account on destination",
            Problem::DuplicateAccounts => "Found duplicate accounts on destination",
            Problem::UnverifiedAtlassian => "Atlassian account on destination has an unverified email",
            Problem::InactiveOnSource => "Customer account is inactive on source",
            Problem::InactiveOnDestination => "Customer account on destination is inactive",
        }
    }

    /// The `Next step` column; `group` names the run's imported group.
    pub fn next_step(self, group: &str) -> String {
        match self {
            Problem::PortalMatchedAtlassian => format!("Review group {group} to assign Customer role"),
            Problem::DuplicateAccounts => "Upgrade portal-only account to Atlassian account".to_owned(),
            Problem::UnverifiedAtlassian => {
                "Verify the email, then upgrade portal-only account to Atlassian account".to_owned()
            }
            Problem::InactiveOnSource => {
                "Copied as inactive: reactivate the account on destination if the customer still needs access"
                    .to_owned()
            }
            Problem::InactiveOnDestination => {
                "Reactivate the account on destination, or the customer cannot view the copied requests".to_owned()
            }
        }
    }

    pub fn bit(self) -> i64 {
        1 << (self as i64)
    }

    /// The problems of a bit set, in report order.
    pub fn from_bits(bits: i64) -> Vec<Problem> {
        Problem::ALL.into_iter().filter(|p| bits & p.bit() != 0).collect()
    }
}

/// Where a customer's copied requests will point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An account the destination already has (or the source's own
    /// Atlassian account, which is global).
    Existing(i64),
    /// A new portal-only account the copy creates.
    NewPortalOnly,
}

/// The decision for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDecision {
    pub outcome: Outcome,
    pub target: Target,
    pub before: TypesHeld,
    pub after: TypesHeld,
    /// The destination account matched by email before the copy, the one
    /// this outcome is about (`None` where the destination held nothing).
    pub matched: Option<i64>,
    /// In report order.
    pub problems: Vec<Problem>,
}

impl CustomerDecision {
    /// Joins the run's imported group (awaiting review) instead of the
    /// customer lists.
    pub fn joins_imported_group(&self) -> bool {
        self.outcome == Outcome::MatchedAtlassian
    }
}

/// Decides one customer (SPEC §3). Never links by email to an Atlassian
/// account whose email is not verified.
pub fn decide(customer: &SourceCustomer, destination: &DestinationIndex) -> CustomerDecision {
    let portal = destination.portal_by_email.get(&customer.email_key).copied();
    let atlassian = destination.atlassian_by_email.get(&customer.email_key).copied();
    let before = TypesHeld::of(portal.is_some(), atlassian.is_some());
    let mut problems = Vec::new();
    if !customer.active {
        problems.push(Problem::InactiveOnSource);
    }
    if let Some(&linked) = destination.linked.get(&customer.account_id) {
        return CustomerDecision {
            outcome: Outcome::AlreadyCopied,
            target: Target::Existing(linked),
            before,
            after: before,
            matched: Some(linked),
            problems: Vec::new(),
        };
    }
    let (outcome, target, after, matched) = match customer.kind {
        AccountType::PortalOnly => match (atlassian, portal) {
            (Some(account), _) if account.email_verified => {
                problems.push(Problem::PortalMatchedAtlassian);
                if portal.is_some() {
                    problems.push(Problem::DuplicateAccounts);
                }
                (Outcome::MatchedAtlassian, Target::Existing(account.account_id), before, Some(account))
            }
            (unverified, Some(existing)) => {
                if unverified.is_some() {
                    problems.push(Problem::UnverifiedAtlassian);
                }
                (Outcome::ExistingPortalOnly, Target::Existing(existing.account_id), before, Some(existing))
            }
            (unverified, None) => {
                if unverified.is_some() {
                    problems.push(Problem::UnverifiedAtlassian);
                }
                let after = TypesHeld::of(true, unverified.is_some());
                (Outcome::NewPortalOnly, Target::NewPortalOnly, after, None)
            }
        },
        AccountType::Atlassian => {
            let own = Target::Existing(customer.account_id);
            let outcome = match (atlassian.is_some(), portal.is_some()) {
                (_, true) => Outcome::BesidePortalOnly,
                (true, false) => Outcome::ExistingSiteUser,
                (false, false) => Outcome::NewSiteUser,
            };
            if portal.is_some() {
                // Upgrading into an unverified account is refused, so the
                // admin must verify first.
                problems.push(if customer.email_verified {
                    Problem::DuplicateAccounts
                } else {
                    Problem::UnverifiedAtlassian
                });
            }
            let after = TypesHeld::of(portal.is_some(), true);
            let matched = if portal.is_some() { portal } else { atlassian };
            (outcome, own, after, matched)
        }
    };
    if matched.is_some_and(|account| !account.active) {
        problems.push(Problem::InactiveOnDestination);
    }
    problems.sort();
    // The account the admin must look at: the one linked, else the one that
    // blocks linking.
    let reported = matched.or(portal).or(atlassian).map(|a| a.account_id);
    CustomerDecision { outcome, target, before, after, matched: reported, problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(kind: AccountType, active: bool, verified: bool) -> SourceCustomer {
        SourceCustomer {
            account_id: 1,
            kind,
            email: "Pat@Acme.test".into(),
            email_key: "pat@acme.test".into(),
            active,
            email_verified: verified,
        }
    }

    fn destination(portal: Option<bool>, atlassian: Option<(bool, bool)>) -> DestinationIndex {
        let mut index = DestinationIndex::default();
        if let Some(active) = portal {
            let account = DestinationAccount { account_id: 20, active, email_verified: true };
            index.portal_by_email.insert("pat@acme.test".into(), account);
        }
        if let Some((active, email_verified)) = atlassian {
            let account = DestinationAccount { account_id: 30, active, email_verified };
            index.atlassian_by_email.insert("pat@acme.test".into(), account);
        }
        index
    }

    use AccountType::{Atlassian as A, PortalOnly as P};
    use Outcome::*;
    use Problem::*;

    /// (source type, source active, source verified, destination portal
    /// (active), destination Atlassian (active, verified)) -> outcome,
    /// target, before, after, problems.
    #[allow(clippy::type_complexity)]
    #[rustfmt::skip] // one row of the matrix per line
    const MATRIX: &[(
        AccountType,
        bool,
        bool,
        Option<bool>,
        Option<(bool, bool)>,
        Outcome,
        Target,
        TypesHeld,
        TypesHeld,
        &[Problem],
    )] = &[
        // The six rows of SPEC §3.
        (P, true, true, None, None, NewPortalOnly, Target::NewPortalOnly, TypesHeld::None, TypesHeld::PortalOnly, &[]),
        (P, true, true, Some(true), None, ExistingPortalOnly, Target::Existing(20), TypesHeld::PortalOnly, TypesHeld::PortalOnly, &[]),
        (P, true, true, None, Some((true, true)), MatchedAtlassian, Target::Existing(30), TypesHeld::Atlassian, TypesHeld::Atlassian, &[PortalMatchedAtlassian]),
        (A, true, true, None, None, NewSiteUser, Target::Existing(1), TypesHeld::None, TypesHeld::Atlassian, &[]),
        (A, true, true, None, Some((true, true)), ExistingSiteUser, Target::Existing(1), TypesHeld::Atlassian, TypesHeld::Atlassian, &[]),
        (A, true, true, Some(true), None, BesidePortalOnly, Target::Existing(1), TypesHeld::PortalOnly, TypesHeld::Both, &[DuplicateAccounts]),
        // Both types already on the destination.
        (P, true, true, Some(true), Some((true, true)), MatchedAtlassian, Target::Existing(30), TypesHeld::Both, TypesHeld::Both, &[PortalMatchedAtlassian, DuplicateAccounts]),
        (A, true, true, Some(true), Some((true, true)), BesidePortalOnly, Target::Existing(1), TypesHeld::Both, TypesHeld::Both, &[DuplicateAccounts]),
        // Never link by email to an unverified Atlassian account.
        (P, true, true, None, Some((true, false)), NewPortalOnly, Target::NewPortalOnly, TypesHeld::Atlassian, TypesHeld::Both, &[UnverifiedAtlassian]),
        (P, true, true, Some(true), Some((true, false)), ExistingPortalOnly, Target::Existing(20), TypesHeld::Both, TypesHeld::Both, &[UnverifiedAtlassian]),
        (A, true, false, Some(true), None, BesidePortalOnly, Target::Existing(1), TypesHeld::PortalOnly, TypesHeld::Both, &[UnverifiedAtlassian]),
        // Inactive accounts on either side.
        (P, false, true, None, None, NewPortalOnly, Target::NewPortalOnly, TypesHeld::None, TypesHeld::PortalOnly, &[InactiveOnSource]),
        (A, false, true, None, None, NewSiteUser, Target::Existing(1), TypesHeld::None, TypesHeld::Atlassian, &[InactiveOnSource]),
        (P, true, true, Some(false), None, ExistingPortalOnly, Target::Existing(20), TypesHeld::PortalOnly, TypesHeld::PortalOnly, &[InactiveOnDestination]),
        (P, true, true, None, Some((false, true)), MatchedAtlassian, Target::Existing(30), TypesHeld::Atlassian, TypesHeld::Atlassian, &[PortalMatchedAtlassian, InactiveOnDestination]),
        (A, true, true, None, Some((false, true)), ExistingSiteUser, Target::Existing(1), TypesHeld::Atlassian, TypesHeld::Atlassian, &[InactiveOnDestination]),
    ];

    #[test]
    fn every_row_of_the_matrix() {
        for (i, row) in MATRIX.iter().enumerate() {
            let (kind, active, verified, portal, atlassian, outcome, target, before, after, problems) = *row;
            let decision = decide(&customer(kind, active, verified), &destination(portal, atlassian));
            assert_eq!(decision.outcome, outcome, "row {i}");
            assert_eq!(decision.target, target, "row {i}");
            assert_eq!(decision.before, before, "row {i}");
            assert_eq!(decision.after, after, "row {i}");
            assert_eq!(decision.problems, problems, "row {i}");
        }
    }

    #[test]
    fn a_customer_linked_by_an_earlier_run_is_left_alone() {
        let mut index = destination(None, Some((true, true)));
        index.linked.insert(1, 30);
        let decision = decide(&customer(P, true, true), &index);
        assert_eq!(decision.outcome, AlreadyCopied);
        assert_eq!(decision.target, Target::Existing(30));
        assert!(decision.problems.is_empty());
    }

    #[test]
    fn report_texts_are_exact() {
        assert_eq!(PortalMatchedAtlassian.text(), "Portal-only customer matched an Atlassian account on destination");
        assert_eq!(
            PortalMatchedAtlassian.next_step("customers-from-eu"),
            "Review group customers-from-eu to assign Customer role"
        );
        assert_eq!(DuplicateAccounts.text(), "Found duplicate accounts on destination");
        assert_eq!(DuplicateAccounts.next_step(""), "Upgrade portal-only account to Atlassian account");
        assert_eq!(UnverifiedAtlassian.text(), "Atlassian account on destination has an unverified email");
        assert_eq!(
            UnverifiedAtlassian.next_step(""),
            "Verify the email, then upgrade portal-only account to Atlassian account"
        );
        assert_eq!(TypesHeld::Both.label(), "Portal-only and Atlassian account");
        for p in Problem::ALL {
            assert_eq!(Problem::from_bits(p.bit()), [p]);
        }
    }

    /// Every input `decide` can see (source type x active x verified x the
    /// destination's portal-only account x its Atlassian account x an
    /// earlier run's link: 240 cases), against the rules of SPEC §3 stated
    /// one by one rather than as the matrix.
    #[test]
    fn every_input_obeys_the_rules() {
        let portals = [None, Some(true), Some(false)];
        let atlassians = [None, Some((true, true)), Some((true, false)), Some((false, true)), Some((false, false))];
        let mut cases = 0;
        for kind in [P, A] {
            for (active, verified) in [(true, true), (true, false), (false, true), (false, false)] {
                for portal in portals {
                    for atlassian in atlassians {
                        for linked in [false, true] {
                            cases += 1;
                            let mut index = destination(portal, atlassian);
                            if linked {
                                index.linked.insert(1, 99);
                            }
                            let d = decide(&customer(kind, active, verified), &index);
                            let case = format!(
                                "{kind:?} active={active} verified={verified} portal={portal:?} atlassian={atlassian:?} linked={linked}: {d:?}"
                            );
                            let before = TypesHeld::of(portal.is_some(), atlassian.is_some());
                            assert_eq!(d.before, before, "{case}");
                            if linked {
                                assert_eq!(
                                    (d.outcome, d.target, d.after),
                                    (AlreadyCopied, Target::Existing(99), before),
                                    "{case}"
                                );
                                assert!(d.problems.is_empty(), "{case}");
                                assert_eq!(d.matched, Some(99), "{case}");
                                continue;
                            }
                            let verified_atlassian = atlassian.is_some_and(|(_, v)| v);
                            let expected = match kind {
                                P if verified_atlassian => MatchedAtlassian,
                                P if portal.is_some() => ExistingPortalOnly,
                                P => NewPortalOnly,
                                A if portal.is_some() => BesidePortalOnly,
                                A if atlassian.is_some() => ExistingSiteUser,
                                A => NewSiteUser,
                            };
                            assert_eq!(d.outcome, expected, "{case}");
                            // Targets: the matched account, a new one, or the
                            // customer's own global account; never an
                            // unverified Atlassian account found by email.
                            let target = match expected {
                                MatchedAtlassian => Target::Existing(30),
                                ExistingPortalOnly => Target::Existing(20),
                                NewPortalOnly => Target::NewPortalOnly,
                                _ => Target::Existing(1),
                            };
                            assert_eq!(d.target, target, "{case}");
                            // The report's destination account: the one linked,
                            // else the one that blocks linking (an unverified
                            // Atlassian account), else none.
                            let matched = match expected {
                                MatchedAtlassian | ExistingSiteUser => Some(30),
                                ExistingPortalOnly | BesidePortalOnly => Some(20),
                                NewPortalOnly => atlassian.map(|_| 30),
                                NewSiteUser | AlreadyCopied => None,
                            };
                            assert_eq!(d.matched, matched, "{case}");
                            // After: what was there, plus what the copy adds.
                            assert!(d.after.has_portal_only() >= before.has_portal_only(), "{case}");
                            assert!(d.after.has_atlassian() >= before.has_atlassian(), "{case}");
                            assert_eq!(
                                d.after.has_portal_only(),
                                portal.is_some() || expected == NewPortalOnly,
                                "{case}"
                            );
                            assert_eq!(d.after.has_atlassian(), atlassian.is_some() || kind == A, "{case}");
                            // Problems, each on its own condition, in report order.
                            let matched_active = match expected {
                                MatchedAtlassian | ExistingSiteUser => atlassian.map(|(a, _)| a),
                                ExistingPortalOnly | BesidePortalOnly => portal,
                                _ => None,
                            };
                            let mut problems = Vec::new();
                            if expected == MatchedAtlassian {
                                problems.push(PortalMatchedAtlassian);
                            }
                            if (expected == MatchedAtlassian && portal.is_some())
                                || (kind == A && portal.is_some() && verified)
                            {
                                problems.push(DuplicateAccounts);
                            }
                            if (kind == P && atlassian.is_some() && !verified_atlassian)
                                || (kind == A && portal.is_some() && !verified)
                            {
                                problems.push(UnverifiedAtlassian);
                            }
                            if !active {
                                problems.push(InactiveOnSource);
                            }
                            if matched_active == Some(false) {
                                problems.push(InactiveOnDestination);
                            }
                            assert_eq!(d.problems, problems, "{case}");
                            assert_eq!(d.joins_imported_group(), expected == MatchedAtlassian, "{case}");
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 240);
    }
}
