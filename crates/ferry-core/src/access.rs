//! The access rule of SPEC §1, in one function every surface calls.

use crate::model::GroupState;

/// Everything the rule needs to know about one account and one request.
/// Stores gather these facts; only [`can_view_request`] interprets them.
#[derive(Debug, Clone, Default)]
pub struct AccessFacts {
    /// The account is active (a merged portal-only account is not).
    pub viewer_active: bool,
    /// The account is in the customer list of the request's project.
    pub in_customer_list: bool,
    /// States of the groups the account belongs to that hold the Customer
    /// role of the request's project.
    pub role_group_states: Vec<GroupState>,
    pub is_reporter: bool,
    pub is_participant: bool,
    /// The account is a member of the customer organization the request is
    /// shared with.
    pub in_shared_organization: bool,
}

/// Customer access to a project: on its customer list, or in a group holding
/// its Customer role that is neither awaiting review nor declined.
pub fn has_customer_access(facts: &AccessFacts) -> bool {
    facts.in_customer_list || facts.role_group_states.iter().any(|state| state.grants_customer_role())
}

/// X can view R iff X is active, X has customer access to R's project, and X
/// is R's reporter, a participant, or a member of the organization R is
/// shared with.
pub fn can_view_request(facts: &AccessFacts) -> bool {
    facts.viewer_active
        && has_customer_access(facts)
        && (facts.is_reporter || facts.is_participant || facts.in_shared_organization)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter_on_list() -> AccessFacts {
        AccessFacts { viewer_active: true, in_customer_list: true, is_reporter: true, ..AccessFacts::default() }
    }

    #[test]
    fn active_reporter_on_the_customer_list_sees_the_request() {
        assert!(can_view_request(&reporter_on_list()));
    }

    #[test]
    fn inactive_account_sees_nothing() {
        let facts = AccessFacts { viewer_active: false, ..reporter_on_list() };
        assert!(!can_view_request(&facts));
    }

    #[test]
    fn no_customer_access_sees_nothing_even_as_reporter() {
        let facts = AccessFacts { in_customer_list: false, ..reporter_on_list() };
        assert!(!can_view_request(&facts));
    }

    #[test]
    fn active_group_with_customer_role_gives_access() {
        let facts =
            AccessFacts { in_customer_list: false, role_group_states: vec![GroupState::Active], ..reporter_on_list() };
        assert!(can_view_request(&facts));
    }

    #[test]
    fn imported_group_awaiting_review_gives_no_access() {
        let facts = AccessFacts {
            in_customer_list: false,
            role_group_states: vec![GroupState::AwaitingReview],
            ..reporter_on_list()
        };
        assert!(!can_view_request(&facts));
    }

    #[test]
    fn declined_imported_group_gives_no_access() {
        let facts = AccessFacts {
            in_customer_list: false,
            role_group_states: vec![GroupState::Declined, GroupState::AwaitingReview],
            ..reporter_on_list()
        };
        assert!(!can_view_request(&facts));
    }

    #[test]
    fn participant_sees_the_request() {
        let facts = AccessFacts { is_reporter: false, is_participant: true, ..reporter_on_list() };
        assert!(can_view_request(&facts));
    }

    #[test]
    fn member_of_the_shared_organization_sees_the_request() {
        let facts = AccessFacts { is_reporter: false, in_shared_organization: true, ..reporter_on_list() };
        assert!(can_view_request(&facts));
    }

    #[test]
    fn customer_access_alone_is_not_enough() {
        let facts = AccessFacts { is_reporter: false, ..reporter_on_list() };
        assert!(!can_view_request(&facts));
    }
}
