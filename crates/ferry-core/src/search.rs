//! Finding customers by what an admin remembers of them: any word of the
//! name, any part of the email that starts a word, accents and case aside.
//!
//! The rule is [`matches`]. A database index holds [`terms`] (each one a
//! tail of the folded email or name starting at a word) so that a search is
//! a prefix range over them; the store re-checks every row it finds with
//! [`matches`], so the index can only narrow, never decide.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest term the index keeps, in bytes: a longer query is looked up by
/// its first [`TERM_BYTES`] bytes and then checked in full.
pub const TERM_BYTES: usize = 64;

/// `text` as search compares it: compatibility-decomposed, accents
/// (combining marks) dropped, letters with no decomposition written in
/// ASCII as `deunicode` spells them (`ø` as `o`, `ł` as `l`, `ß` as `ss`,
/// `æ` as `ae`), lowercased, runs of white space made one space, trimmed.
/// `José  MÜLLER`, `jose muller` and `Øyvind`, `oyvind` fold alike.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    let mut space = false;
    let mut push = |c: char| {
        if c.is_whitespace() {
            space = !folded.is_empty();
            return;
        }
        if space {
            folded.push(' ');
            space = false;
        }
        folded.extend(c.to_lowercase());
    };
    // Most names and emails are ASCII: no Unicode tables for them.
    if text.is_ascii() {
        text.chars().for_each(&mut push);
        return folded;
    }
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        match deunicode::deunicode_char(c) {
            Some(ascii) if !c.is_ascii() => ascii.chars().for_each(&mut push),
            _ => push(c),
        }
    }
    folded
}

/// Byte offsets where a word starts: a letter or digit after anything else.
fn word_starts(folded: &str) -> impl Iterator<Item = usize> + '_ {
    let mut previous_alnum = false;
    folded.char_indices().filter_map(move |(i, c)| {
        let starts = c.is_alphanumeric() && !previous_alnum;
        previous_alnum = c.is_alphanumeric();
        starts.then_some(i)
    })
}

/// The terms the index keeps for a customer: every tail of the folded
/// email and name that starts at a word, cut to [`TERM_BYTES`] (on a
/// character boundary), without duplicates. `pat.murphy@example.com` gives
/// `pat.murphy@example.com`, `murphy@example.com`, `example.com` and
/// `com`; `Pat Murphy` gives `pat murphy` and `murphy`.
pub fn terms(email: &str, name: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for text in [fold(email), fold(name)] {
        for start in word_starts(&text) {
            let term = truncate(&text[start..]);
            if !terms.iter().any(|t| t == term) {
                terms.push(term.to_owned());
            }
        }
    }
    terms
}

fn truncate(text: &str) -> &str {
    if text.len() <= TERM_BYTES {
        return text;
    }
    let mut end = TERM_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A search as typed, folded: `None` when nothing in it can start a word
/// (empty, or only punctuation), which no customer matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    folded: String,
    email_prefix: String,
}

impl Query {
    pub fn parse(typed: &str) -> Option<Query> {
        let folded = fold(typed);
        let start = word_starts(&folded).next()?;
        let typed = typed.trim();
        let email_prefix =
            if typed.is_ascii() { typed.to_ascii_lowercase() } else { typed.nfc().collect::<String>().to_lowercase() };
        Some(Query { folded: folded[start..].to_owned(), email_prefix })
    }

    /// The search as the start of a normalized email
    /// ([`crate::email::normalize`]'s case and form, accents kept).
    pub fn email_prefix(&self) -> &str {
        &self.email_prefix
    }

    /// The folded search, as [`matches`] compares it.
    pub fn text(&self) -> &str {
        &self.folded
    }

    /// The index range that holds every term a match can have:
    /// `[start, end)`, compared byte by byte.
    pub fn range(&self) -> (String, String) {
        let start = truncate(&self.folded).to_owned();
        let end = format!("{start}\u{10FFFF}");
        (start, end)
    }
}

/// Whether a customer with this email and display name is found by
/// `query`: some word of the email or name starts the query, and the rest
/// of the query follows on from there. So `murphy`, `example.com`,
/// `pat.mur`, `jose` (for José) and `pat mur` (for Pat Murphy) all find
/// Pat Murphy at pat.murphy@example.com; `urphy` does not.
pub fn matches(query: &Query, email: &str, name: &str) -> bool {
    [fold(email), fold(name)].iter().any(|text| word_starts(text).any(|i| text[i..].starts_with(query.text())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(q: &str, email: &str, name: &str) -> bool {
        Query::parse(q).is_some_and(|q| matches(&q, email, name))
    }

    #[test]
    fn any_word_of_the_name_and_any_word_start_of_the_email() {
        let (email, name) = ("pat.murphy@example.com", "Pat Murphy");
        for q in
            ["murphy", "MURPHY", "example.com", "example", "com", "pat.mur", "pat mur", "Pat", "murphy@ex", " murphy "]
        {
            assert!(found(q, email, name), "{q:?} should find {email}");
        }
        for q in ["urphy", "xample", "murphy pat", "pat.murphy@example.org", "", "  ", "...", "@"] {
            assert!(!found(q, email, name), "{q:?} should not find {email}");
        }
    }

    #[test]
    fn accents_and_case_do_not_matter_either_way() {
        assert!(found("jose", "jose.muller@acme.test", "José Müller"));
        assert!(found("müller", "jose.muller@acme.test", "Jose Muller"));
        assert!(found("josé.mü", "josé.müller@acme.test", "José"));
        // Decomposed (NFD) and composed (NFC) spellings are one.
        assert!(found("jose\u{301}", "x@acme.test", "Jos\u{e9}"));
        assert!(found("ÅSA", "asa@acme.test", "åsa"));
        assert!(found("ｐａｔ", "pat@acme.test", "Pat"));
        // Letters that do not decompose still lose their marks.
        assert!(found("oyvind", "x@acme.test", "Øyvind Dahl"));
        assert!(found("lukasz", "x@acme.test", "Łukasz"));
        assert!(found("strasse", "x@acme.test", "Straße"));
        assert!(found("Ærø", "aero@acme.test", ""));
        assert!(found("münchen", "ana@münchen.de", ""));
    }

    #[test]
    fn terms_are_word_tails_without_duplicates() {
        assert_eq!(
            terms("pat.murphy@example.com", "Pat  Murphy"),
            ["pat.murphy@example.com", "murphy@example.com", "example.com", "com", "pat murphy", "murphy"]
        );
        assert_eq!(terms("ann@x.io", "Ann"), ["ann@x.io", "x.io", "io", "ann"]);
        assert_eq!(terms("a@b.c", ""), ["a@b.c", "b.c", "c"]);
    }

    #[test]
    fn long_terms_are_cut_on_a_character_boundary_and_still_found() {
        // 'ж' is two bytes: after the 'a', byte 64 falls inside one.
        let long = format!("a{}", "ж".repeat(40));
        assert_eq!(truncate(&long), &long[..TERM_BYTES - 1]);
        let email = format!("{}@acme.test", "pat.".repeat(30));
        let cut = terms(&email, "")[0].clone();
        assert_eq!(cut.len(), TERM_BYTES);
        assert!(email.starts_with(&cut));
        let query = Query::parse(&email).unwrap();
        let (start, end) = query.range();
        assert!(start.as_str() <= cut.as_str() && cut.as_str() < end.as_str());
        assert!(matches(&query, &email, ""));
    }

    proptest::proptest! {
        /// The index never loses a match: every customer a query matches
        /// has a term in the query's range.
        #[test]
        fn every_match_has_a_term_in_range(email in "[a-zé.+_-]{1,80}@[a-zü.-]{1,20}", name in "[A-Za-zÉé ]{0,30}", from in 0usize..100, len in 1usize..90) {
            let text = format!("{email} {name}");
            let chars: Vec<char> = text.chars().collect();
            let from = from.min(chars.len() - 1);
            let typed: String = chars[from..(from + len).min(chars.len())].iter().collect();
            if let Some(query) = Query::parse(&typed) && matches(&query, &email, &name) {
                let (start, end) = query.range();
                let indexed = terms(&email, &name);
                proptest::prop_assert!(indexed.iter().any(|t| start.as_str() <= t.as_str() && t.as_str() < end.as_str()));
            }
        }
    }
}
