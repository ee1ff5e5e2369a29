//! Email identity (SPEC §1): matching is on the normalized form, the original
//! spelling is kept for display.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// Why an address was rejected. The message is written for the admin who
/// must fix the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email {0:?} has no '@' separating local part and domain")]
    MissingAt(String),
    #[error("email {0:?} has an empty local part before '@'")]
    EmptyLocal(String),
    #[error("email {0:?} has an invalid local part")]
    InvalidLocal(String),
    #[error("email {0:?} has an empty domain after '@'")]
    EmptyDomain(String),
    #[error("email {0:?} has an invalid domain: {1}")]
    InvalidDomain(String, &'static str),
}

/// A validated address: the spelling the source used and the key it is
/// matched on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email {
    original: String,
    key: String,
}

impl Email {
    /// Validates `raw` and computes its key. The original keeps its spelling
    /// but loses surrounding white space.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let key = normalize(raw)?;
        Ok(Email { original: raw.trim().to_owned(), key })
    }

    /// The address as its source wrote it (trimmed).
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The normalized form every comparison uses.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn into_parts(self) -> (String, String) {
        (self.original, self.key)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.original)
    }
}

/// The key to look an address up by, when the caller must answer alike for
/// text that is no valid address (sign-in: "wrong email or password", after
/// the same rate limit): the normalized form, else the text in lowercase,
/// which no stored key equals.
pub fn lookup_key(raw: &str) -> String {
    normalize(raw).unwrap_or_else(|_| raw.to_lowercase())
}

/// The key of an account whose email its site hides (SPEC §7, §8): built
/// from the account id, with a space before the `@` of any id, so that no
/// address [`normalize`] accepts can ever equal it. Such an account is never
/// matched by email: only an account with the same id (the same Atlassian
/// account) has the same key.
pub fn hidden_key(account_id: &str) -> String {
    format!("{HIDDEN_PREFIX}{account_id}")
}

const HIDDEN_PREFIX: &str = "hidden ";

/// Whether `key` is a [`hidden_key`]: the account's email is not known.
pub fn is_hidden(key: &str) -> bool {
    key.starts_with(HIDDEN_PREFIX)
}

/// `normalize(email)` of SPEC §1: Unicode NFC, surrounding white space
/// trimmed, the whole address lowercased. The domain is compared in its
/// Unicode form so that `xn--` and Unicode spellings of one domain are equal.
pub fn normalize(raw: &str) -> Result<String, EmailError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(EmailError::Empty);
    }
    // Most addresses are ASCII: one allocation, no Unicode tables.
    let lowered = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        trimmed.nfc().collect::<String>().to_lowercase()
    };
    let Some(at) = lowered.rfind('@') else {
        return Err(EmailError::MissingAt(trimmed.to_owned()));
    };
    let (local, domain) = (&lowered[..at], &lowered[at + 1..]);
    if local.is_empty() {
        return Err(EmailError::EmptyLocal(trimmed.to_owned()));
    }
    if domain.is_empty() {
        return Err(EmailError::EmptyDomain(trimmed.to_owned()));
    }
    if local.chars().any(char::is_whitespace) || !email_address::EmailAddress::is_valid_local_part(local) {
        return Err(EmailError::InvalidLocal(trimmed.to_owned()));
    }
    match canonical_domain(domain).map_err(|why| EmailError::InvalidDomain(trimmed.to_owned(), why))? {
        None => Ok(lowered),
        Some(unicode) => Ok(format!("{local}@{unicode}")),
    }
}

/// Checks a domain is a host name mail can be delivered to: at least two
/// labels of letters, digits and hyphens once in ASCII (IDNA) form. Returns
/// its Unicode form when that differs from `domain` (an `xn--` spelling or
/// a mapped character).
fn canonical_domain(domain: &str) -> Result<Option<String>, &'static str> {
    if domain.is_ascii() && !domain.contains("xn--") {
        check_ascii_host(domain)?;
        return Ok(None);
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| "not a valid internationalized domain name")?;
    check_ascii_host(&ascii)?;
    let (unicode, result) = idna::domain_to_unicode(&ascii);
    result.map_err(|_| "an xn-- label is not valid punycode")?;
    Ok((unicode != domain).then_some(unicode))
}

fn check_ascii_host(ascii: &str) -> Result<(), &'static str> {
    let mut labels = 0;
    for label in ascii.split('.') {
        labels += 1;
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row or a dot at an end)");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("it holds a character that is not a letter, digit, '-' or '.'");
        }
    }
    if labels < 2 {
        return Err("it needs at least two labels, like example.com");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_key_is_no_address_and_names_its_account() {
        for id in ["aa-1", "a@b.test", "qm:1f2e@x", "Zoë@exämple.test", ""] {
            let key = hidden_key(id);
            assert!(is_hidden(&key));
            assert!(normalize(&key).is_err(), "{key:?} must not be an address");
        }
        assert_ne!(hidden_key("aa-1"), hidden_key("aa-2"));
        assert!(!is_hidden(&normalize("hidden@acme.test").unwrap_or_default()));
    }
    use proptest::prelude::*;

    #[test]
    fn case_space_and_unicode_forms_collapse() {
        let nfc = "jos\u{e9}@example.com";
        let nfd = "jose\u{301}@example.com";
        assert_eq!(normalize(nfc), normalize(nfd));
        assert_eq!(normalize("  Chen@Acme.TEST \t").as_deref(), Ok("chen@acme.test"));
    }

    #[test]
    fn idna_and_unicode_domains_compare_equal() {
        let unicode = normalize("anna@bücher.example").unwrap();
        let ascii = normalize("anna@xn--bcher-kva.example").unwrap();
        assert_eq!(unicode, "anna@bücher.example");
        assert_eq!(unicode, ascii);
    }

    #[test]
    fn utf8_local_part_is_valid() {
        assert_eq!(normalize("Δοκιμή@Example.gr").as_deref(), Ok("δοκιμή@example.gr"));
    }

    #[test]
    fn invalid_addresses_are_rejected_with_a_reason() {
        assert_eq!(normalize("   "), Err(EmailError::Empty));
        assert!(matches!(normalize("no-at.example"), Err(EmailError::MissingAt(_))));
        assert!(matches!(normalize("@example.com"), Err(EmailError::EmptyLocal(_))));
        assert!(matches!(normalize("a@"), Err(EmailError::EmptyDomain(_))));
        assert!(matches!(normalize("a b@example.com"), Err(EmailError::InvalidLocal(_))));
        assert!(matches!(normalize("a..b@example.com"), Err(EmailError::InvalidLocal(_))));
        assert!(matches!(normalize("a@localhost"), Err(EmailError::InvalidDomain(..))));
        assert!(matches!(normalize("a@exa_mple.com"), Err(EmailError::InvalidDomain(..))));
        assert!(matches!(normalize("a@example..com"), Err(EmailError::InvalidDomain(..))));
        let message = normalize("no-at.example").unwrap_err().to_string();
        assert!(message.contains("no '@'"), "{message}");
    }

    #[test]
    fn formula_looking_address_is_still_an_address() {
        assert_eq!(normalize("=cmd@example.com").as_deref(), Ok("=cmd@example.com"));
    }

    #[test]
    fn parse_keeps_the_original_spelling() {
        let email = Email::parse(" Chen@Acme.test ").ok();
        assert_eq!(email.as_ref().map(Email::original), Some("Chen@Acme.test"));
        assert_eq!(email.as_ref().map(Email::key), Some("chen@acme.test"));
    }

    fn local_part() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9][a-zA-Z0-9._+-]{0,10}[a-zA-Z0-9]|[éÉüÜçÇ]{1,3}").unwrap()
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(local in local_part(), domain in "[a-zA-Z]{1,8}\\.(com|test|de)") {
            let raw = format!("{local}@{domain}");
            if let Ok(once) = normalize(&raw) {
                prop_assert_eq!(normalize(&once), Ok(once.clone()));
            }
        }

        #[test]
        fn case_space_and_nf_variants_collapse(local in local_part(), domain in "[a-z]{1,8}\\.(com|test)", pad in "[ \t]{0,3}") {
            let raw = format!("{local}@{domain}");
            let base = normalize(&raw);
            prop_assume!(base.is_ok());
            let upper = format!("{pad}{}{pad}", raw.to_uppercase());
            let nfd: String = raw.nfd().collect();
            let nfc: String = raw.nfc().collect();
            prop_assert_eq!(&normalize(&upper), &base);
            prop_assert_eq!(&normalize(&nfd), &base);
            prop_assert_eq!(&normalize(&nfc), &base);
        }

        #[test]
        fn strings_without_at_are_rejected(raw in "[^@]{0,30}") {
            prop_assert!(normalize(&raw).is_err());
        }
    }
}
