//! Formula-injection guard for CSV meant for spreadsheets (SPEC §4).

use std::borrow::Cow;

/// Prefixes a cell that a spreadsheet would run as a formula with `'`.
pub fn guard_cell(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::guard_cell;

    #[test]
    fn dangerous_first_characters_are_prefixed() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(guard_cell(cell), format!("'{cell}"));
        }
    }

    #[test]
    fn ordinary_cells_are_untouched() {
        for cell in ["alice@acme.test", "", "1-2", "a=b"] {
            assert_eq!(guard_cell(cell), cell);
        }
    }
}
