//! The life of a copy run: its states and the phases it applies in. The
//! schema's CHECKs list exactly these values (a test in ferry-store holds
//! them to it); rows that hold anything else are decode errors.

use std::fmt;

/// Where a copy run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Deciding every customer's outcome (nothing written to the
    /// destination yet).
    Planning,
    /// Stopped by blocking conflicts before anything was written.
    Blocked,
    /// Writing its decisions, chunk by chunk.
    Applying,
    Done,
    RolledBack,
    /// Stopped by a failure that would repeat on resume; roll it back.
    Failed,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Planning,
        RunState::Blocked,
        RunState::Applying,
        RunState::Done,
        RunState::RolledBack,
        RunState::Failed,
    ];

    /// The value the store, the API and `copy status` use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Planning => "planning",
            RunState::Blocked => "blocked",
            RunState::Applying => "applying",
            RunState::Done => "done",
            RunState::RolledBack => "rolled_back",
            RunState::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Planning or applying: the run goes on (or a crash left it for
    /// `copy resume`), and holds its destination against other runs.
    pub fn is_unfinished(self) -> bool {
        matches!(self, RunState::Planning | RunState::Applying)
    }

    /// The state in the console's words.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Planning => "planning",
            RunState::Blocked => "stopped by blocking conflicts",
            RunState::Applying => "copying",
            RunState::Done => "done",
            RunState::RolledBack => "rolled back",
            RunState::Failed => "failed",
        }
    }

    /// The states, as an SQL list of literals (`'planning', 'applying'`).
    pub fn sql_list(states: &[RunState]) -> String {
        crate::model::sql_literals(states.iter().map(|s| s.as_str()))
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of its work an applying run is in; each commits its chunks
/// with a cursor, and the next starts at cursor 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Not applying yet (the run is planning, or was blocked).
    NotStarted,
    /// New accounts, site users and the run's links to accounts.
    Accounts,
    /// Projects, customer lists, organizations and the imported group.
    Structure,
    /// Requests, participants and comments.
    Requests,
    /// Everything is written.
    Done,
}

impl Phase {
    pub const ALL: [Phase; 5] = [Phase::NotStarted, Phase::Accounts, Phase::Structure, Phase::Requests, Phase::Done];

    /// The number the store keeps.
    pub fn code(self) -> i64 {
        match self {
            Phase::NotStarted => 0,
            Phase::Accounts => 1,
            Phase::Structure => 2,
            Phase::Requests => 3,
            Phase::Done => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.code() == code)
    }

    /// The phase's short name: progress bars, timings, `copy status`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::NotStarted => "planning",
            Phase::Accounts => "accounts",
            Phase::Structure => "projects and memberships",
            Phase::Requests => "requests",
            Phase::Done => "done",
        }
    }

    /// The phase in the console's words.
    pub fn label(self) -> &'static str {
        match self {
            Phase::NotStarted => "deciding every customer's outcome",
            Phase::Accounts => "copying accounts",
            Phase::Structure => "copying projects, customer lists and organizations",
            Phase::Requests => "copying requests and comments",
            Phase::Done => "finishing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
        assert_eq!(RunState::parse("Done"), None);
        for s in RunState::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
        for p in Phase::ALL {
            assert_eq!(Phase::from_code(p.code()), Some(p));
        }
        assert_eq!(Phase::from_code(5), None);
        assert_eq!(RunState::sql_list(&[RunState::Planning, RunState::Applying]), "'planning', 'applying'");
    }
}
