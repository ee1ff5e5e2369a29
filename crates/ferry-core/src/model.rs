//! Vocabulary of the model (SPEC §1) shared by every layer.

use std::borrow::Cow;
use std::fmt;

/// The two kinds of customer account. `Display` gives the label reports use;
/// [`AccountType::jira_value`] the value snapshots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountType {
    /// Exists on one site only, can use only its help center.
    PortalOnly,
    /// Global Atlassian account; a site user where it has access.
    Atlassian,
}

impl AccountType {
    /// The Jira REST value used in `accounts.csv`.
    pub fn jira_value(self) -> &'static str {
        match self {
            AccountType::PortalOnly => "customer",
            AccountType::Atlassian => "atlassian",
        }
    }

    pub fn from_jira_value(value: &str) -> Option<AccountType> {
        match value {
            "customer" => Some(AccountType::PortalOnly),
            "atlassian" => Some(AccountType::Atlassian),
            _ => None,
        }
    }

    /// The label reports use, exactly as SPEC §3 writes it.
    pub fn label(self) -> &'static str {
        match self {
            AccountType::PortalOnly => "Portal-only",
            AccountType::Atlassian => "Atlassian account",
        }
    }

    /// The CLI's and the API's spelling: `portal-only` or `atlassian`.
    pub fn cli_value(self) -> &'static str {
        match self {
            AccountType::PortalOnly => "portal-only",
            AccountType::Atlassian => "atlassian",
        }
    }

    /// Parses the CLI's `--type portal-only|atlassian`.
    pub fn from_cli(value: &str) -> Option<AccountType> {
        match value {
            "portal-only" => Some(AccountType::PortalOnly),
            "atlassian" => Some(AccountType::Atlassian),
            _ => None,
        }
    }
}

impl fmt::Display for AccountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The one format ferry stores its own times in (runs, audit log,
/// sessions, migrations): RFC 3339 in UTC with milliseconds and `Z`, which
/// sorts as text in time order.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// [`timestamp`] of this moment.
pub fn now() -> String {
    timestamp(chrono::Utc::now())
}

/// A site, as every layer names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Site {
    pub id: i64,
    pub slug: String,
    /// The organization the site belongs to.
    pub org: String,
}

/// The key a group's name is unique by on its site: names differ only if
/// they differ in more than case (`Customers-From-EU` is `customers-from-eu`).
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Review state of a group. Groups created by a copy start awaiting review
/// (SPEC §3 case 3); every other group is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Active,
    AwaitingReview,
    Declined,
}

impl GroupState {
    pub const ALL: [GroupState; 3] = [GroupState::Active, GroupState::AwaitingReview, GroupState::Declined];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Active => "active",
            GroupState::AwaitingReview => "awaiting_review",
            GroupState::Declined => "declined",
        }
    }

    pub fn parse(value: &str) -> Option<GroupState> {
        match value {
            "active" => Some(GroupState::Active),
            "awaiting_review" => Some(GroupState::AwaitingReview),
            "declined" => Some(GroupState::Declined),
            _ => None,
        }
    }

    /// Whether holding a project's Customer role through this group gives
    /// customer access.
    pub fn grants_customer_role(self) -> bool {
        matches!(self, GroupState::Active)
    }

    /// [`GroupState::grants_customer_role`] as an SQL condition on the
    /// state column `column`, for queries that must filter in the database:
    /// generated from the rule, so the two cannot disagree.
    pub fn grants_customer_role_sql(column: &str) -> String {
        let granting = GroupState::ALL.into_iter().filter(|s| s.grants_customer_role()).map(GroupState::as_str);
        format!("{column} IN ({})", sql_literals(granting))
    }
}

/// Values as an SQL list of string literals (`'planning', 'applying'`), for
/// enum values in a query: ferry's own constants, never user input.
pub fn sql_literals<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values.into_iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
}

/// Parses a `true`/`false` cell.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "true" | "TRUE" | "True" => Some(true),
        "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Names of organizations and site slugs: lowercase letters, digits and
/// inner hyphens, 1 to 63 characters, so they are safe in URLs and group
/// names (`customers-from-<site>`). `what` names the value in the message.
pub fn validate_slug(what: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} name {value:?} is not valid: use 1 to 63 lowercase letters, digits and inner hyphens"))
    }
}

/// Checks a project key: `[A-Z][A-Z0-9]{1,9}`.
pub fn validate_project_key(key: &str) -> Result<(), String> {
    let bytes = key.as_bytes();
    let shape_ok = (2..=10).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes[1..].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if shape_ok {
        Ok(())
    } else {
        Err(format!("project key {key:?} must be an uppercase letter followed by 1 to 9 uppercase letters or digits"))
    }
}

/// Splits a request key `KEY-7` into its project key and number, checking
/// both.
pub fn parse_request_key(key: &str) -> Result<(&str, i64), String> {
    let Some((project, number)) = key.rsplit_once('-') else {
        return Err(format!("request key {key:?} must look like PROJECT-NUMBER"));
    };
    validate_project_key(project).map_err(|e| format!("request key {key:?}: {e}"))?;
    match number.parse::<i64>() {
        Ok(n) if n > 0 && !number.starts_with('0') && !number.starts_with('+') => Ok((project, n)),
        _ => Err(format!("request key {key:?} must end in a positive number without leading zeros")),
    }
}

/// Parses a timestamp (RFC 3339) and writes it back in one canonical UTC
/// form, so stored values sort and compare as text on both backends. A value
/// already in that form (`2026-03-01T09:00:00Z`) is returned as is.
pub fn canonical_timestamp(value: &str) -> Result<Cow<'_, str>, String> {
    if is_canonical_utc(value) {
        return Ok(Cow::Borrowed(value));
    }
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| Cow::Owned(t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
        .map_err(|e| format!("timestamp {value:?} is not RFC 3339 (like 2026-03-01T09:00:00Z): {e}"))
}

/// `YYYY-MM-DDTHH:MM:SSZ` naming a real instant.
fn is_canonical_utc(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return false;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    match (number(0, 4), number(5, 7), number(8, 10), number(11, 13), number(14, 16), number(17, 19)) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => {
            h < 24 && mi < 60 && s < 60 && chrono::NaiveDate::from_ymd_opt(y as i32, mo, d).is_some()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_keys() {
        assert!(validate_project_key("SUP").is_ok());
        assert!(validate_project_key("A1").is_ok());
        assert!(validate_project_key("ABCDEFGHIJ").is_ok());
        assert!(validate_project_key("A").is_err());
        assert!(validate_project_key("ABCDEFGHIJK").is_err());
        assert!(validate_project_key("sup").is_err());
        assert!(validate_project_key("1AB").is_err());
    }

    #[test]
    fn request_keys() {
        assert_eq!(parse_request_key("SUP-7"), Ok(("SUP", 7)));
        assert!(parse_request_key("SUP7").is_err());
        assert!(parse_request_key("SUP-0").is_err());
        assert!(parse_request_key("SUP-07").is_err());
        assert!(parse_request_key("sup-1").is_err());
    }

    #[test]
    fn timestamps_become_canonical_utc() {
        assert_eq!(canonical_timestamp("2026-03-01T10:00:00+01:00").as_deref(), Ok("2026-03-01T09:00:00Z"));
        assert_eq!(canonical_timestamp("2026-03-01T09:00:00Z").as_deref(), Ok("2026-03-01T09:00:00Z"));
        assert!(canonical_timestamp("yesterday").is_err());
        assert!(canonical_timestamp("2026-02-30T09:00:00Z").is_err());
        assert!(canonical_timestamp("2026-03-01T24:00:00Z").is_err());
        assert!(matches!(canonical_timestamp("2026-03-01T09:00:00Z"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn labels_are_the_report_texts() {
        assert_eq!(AccountType::PortalOnly.to_string(), "Portal-only");
        assert_eq!(AccountType::Atlassian.to_string(), "Atlassian account");
        assert_eq!(AccountType::from_jira_value("customer"), Some(AccountType::PortalOnly));
        assert_eq!(AccountType::from_jira_value("Customer"), None);
    }
}
