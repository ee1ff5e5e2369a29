//! ferry's one error type. Every layer's error becomes an [`Error`] with a
//! stable [`Code`]; the code alone decides the CLI's exit status and the
//! API's HTTP status, in [`Code::exit_status`] and [`Code::http_status`].

use std::fmt;

use ferry_copy::CopyError;
use ferry_remedy::RemedyError;
use ferry_snapshot::ImportError;
use ferry_store::StoreError;

/// What went wrong, for scripts: the API sends it as `error.code`, and it
/// decides the exit status of `ferry` and the HTTP status of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The input is malformed (a key, an email, a value out of range).
    Invalid,
    /// The input names something that does not exist.
    NotFound,
    /// The input contradicts what the database holds (a name taken, a
    /// state that refuses the action).
    Conflict,
    /// The copy plan has blocking conflicts; nothing was copied.
    BlockingConflicts,
    /// Later changes depend on the run; nothing was rolled back.
    RollbackRefused,
    /// Another process is applying the run now.
    RunClaimed,
    /// The run is done: resuming it has nothing to do.
    RunDone,
    /// The run is finished otherwise (failed, blocked, rolled back).
    NotResumable,
    /// Another run into the same site is unfinished.
    RunUnfinished,
    /// The source changed under a run; the run failed and must be rolled
    /// back and run again.
    SourceChanged,
    /// The database named does not exist, or the setting names none.
    NoDatabase,
    /// The operation finished but left some of what was asked undone (an
    /// upgrade with blocked accounts): the output says which.
    Partial,
    /// A Jira Cloud site (or the organization admin API) refused a pull
    /// or could not be reached; nothing was written.
    Remote,
    /// The database, the disk or the output failed: not the input.
    Internal,
}

impl Code {
    pub const ALL: [Code; 14] = [
        Code::Invalid,
        Code::NotFound,
        Code::Conflict,
        Code::BlockingConflicts,
        Code::RollbackRefused,
        Code::RunClaimed,
        Code::RunDone,
        Code::NotResumable,
        Code::RunUnfinished,
        Code::SourceChanged,
        Code::NoDatabase,
        Code::Partial,
        Code::Remote,
        Code::Internal,
    ];

    /// The stable spelling (the API's `error.code`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Invalid => "invalid",
            Code::NotFound => "not_found",
            Code::Conflict => "conflict",
            Code::BlockingConflicts => "blocking_conflicts",
            Code::RollbackRefused => "rollback_refused",
            Code::RunClaimed => "run_claimed",
            Code::RunDone => "run_done",
            Code::NotResumable => "not_resumable",
            Code::RunUnfinished => "run_unfinished",
            Code::SourceChanged => "source_changed",
            Code::NoDatabase => "no_database",
            Code::Partial => "partial",
            Code::Remote => "remote",
            Code::Internal => "internal",
        }
    }

    /// The exit status of `ferry`: 2 when the input is at fault and nothing
    /// was written, 1 for everything else (README, CLI).
    pub fn exit_status(self) -> u8 {
        match self {
            Code::Invalid
            | Code::NotFound
            | Code::Conflict
            | Code::BlockingConflicts
            | Code::RollbackRefused
            | Code::RunDone
            | Code::NotResumable
            | Code::RunUnfinished
            | Code::NoDatabase => 2,
            Code::RunClaimed | Code::SourceChanged | Code::Partial | Code::Remote | Code::Internal => 1,
        }
    }

    /// The HTTP status the API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Invalid => 422,
            Code::NotFound => 404,
            Code::Conflict
            | Code::BlockingConflicts
            | Code::RollbackRefused
            | Code::RunClaimed
            | Code::RunDone
            | Code::NotResumable
            | Code::RunUnfinished
            | Code::SourceChanged
            | Code::Partial => 409,
            Code::Remote => 502,
            Code::NoDatabase | Code::Internal => 500,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of any ferry operation, with its message for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    /// One line for the admin. For a database failure, the driver's text;
    /// the API sends [`Error::public_message`] instead.
    pub message: String,
    /// Further lines: blocking conflicts, rollback blockers.
    pub details: Vec<String>,
    /// The database itself failed (not the input).
    pub database: bool,
    /// ...because its disk is full or failing.
    pub disk: bool,
    /// The store's own code for a failure of or around the database
    /// (`db`, `db_open`, `io`…): its message may quote rows, paths or
    /// drivers, so the API sends the code alone and logs the message.
    pub store_code: Option<&'static str>,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error { code, message: message.into(), details: Vec::new(), database: false, disk: false, store_code: None }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(Code::Invalid, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(Code::Internal, message)
    }

    pub(crate) fn with_details(mut self, details: Vec<String>) -> Error {
        self.details = details;
        self
    }

    /// What a caller over the network may read: a database failure's
    /// detail (which may quote rows) stays in the server's log.
    pub fn public_message(&self) -> String {
        match self.store_code {
            Some(code) => format!("database error ({code}); the server's log has the detail"),
            None => self.message.clone(),
        }
    }

    /// The message with its details, one per indented line, as the CLI
    /// prints it.
    pub fn full_text(&self) -> String {
        if self.details.is_empty() {
            self.message.clone()
        } else {
            let lines: Vec<String> = self.details.iter().map(|d| format!("  {d}")).collect();
            format!("{}:\n{}", self.message, lines.join("\n"))
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_text())
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        let code = match &e {
            StoreError::NotFound(_) => Code::NotFound,
            StoreError::Invalid(_) => Code::Invalid,
            StoreError::Conflict(_) => Code::Conflict,
            StoreError::SourceChanged(_) => Code::SourceChanged,
            _ if e.is_unstorable_text() => {
                return Error::invalid("a text value holds a NUL character, which the database cannot store");
            }
            // Failures around the database rather than in it: the CLI prints
            // them as they are; the API keeps their detail for its log.
            StoreError::NoDatabase { .. } | StoreError::Open { .. } | StoreError::Io(_) => {
                let code = if matches!(e, StoreError::NoDatabase { .. }) { Code::NoDatabase } else { Code::Internal };
                return Error { store_code: Some(e.code()), ..Error::new(code, e.to_string()) };
            }
            StoreError::Sqlite(_)
            | StoreError::Postgres(_)
            | StoreError::Migration { .. }
            | StoreError::Decode { .. } => {
                return Error {
                    code: Code::Internal,
                    message: e.to_string(),
                    details: Vec::new(),
                    database: true,
                    disk: e.is_disk_failure(),
                    store_code: Some(e.code()),
                };
            }
        };
        Error::new(code, e.to_string())
    }
}

impl From<CopyError> for Error {
    fn from(e: CopyError) -> Error {
        match e {
            CopyError::Invalid(m) => Error::invalid(m),
            CopyError::Conflicts(conflicts) => Error::new(
                Code::BlockingConflicts,
                format!("{} blocking conflict(s); nothing was copied", conflicts.len()),
            )
            .with_details(conflicts.iter().map(|c| format!("{}: {} ({})", c.kind, c.problem, c.resolution)).collect()),
            CopyError::RollbackRefused { run, blockers } => {
                Error::new(Code::RollbackRefused, format!("run {run} cannot be rolled back")).with_details(blockers)
            }
            e @ CopyError::Claimed(_) => Error::new(Code::RunClaimed, e.to_string()),
            CopyError::NotResumable { state, message, .. } => {
                let code = if state == ferry_core::run::RunState::Done { Code::RunDone } else { Code::NotResumable };
                Error::new(code, message)
            }
            e @ CopyError::DestinationBusy { .. } => Error::new(Code::RunUnfinished, e.to_string()),
            CopyError::Store(e) => e.into(),
            e @ CopyError::Report { .. } => Error::internal(e.to_string()),
        }
    }
}

impl From<RemedyError> for Error {
    fn from(e: RemedyError) -> Error {
        match e {
            RemedyError::Invalid(m) => Error::invalid(m),
            RemedyError::Store(e) => e.into(),
        }
    }
}

impl From<ImportError> for Error {
    fn from(e: ImportError) -> Error {
        match e {
            ImportError::Store(e) => e.into(),
            // A snapshot folder that cannot be read is the input at fault.
            e @ (ImportError::Io { .. } | ImportError::Invalid(_)) => Error::invalid(e.to_string()),
        }
    }
}

impl From<ferry_jira::PullError> for Error {
    fn from(e: ferry_jira::PullError) -> Error {
        use ferry_jira::PullError;
        let code = match &e {
            PullError::Config(_) => Code::Invalid,
            PullError::Status { .. } | PullError::Network { .. } | PullError::Unexpected { .. } => Code::Remote,
            PullError::Io { .. } => Code::Internal,
        };
        Error::new(code, format!("{e}; nothing was written"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_each_status_has_one_home() {
        let spelled: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            spelled,
            [
                "invalid",
                "not_found",
                "conflict",
                "blocking_conflicts",
                "rollback_refused",
                "run_claimed",
                "run_done",
                "not_resumable",
                "run_unfinished",
                "source_changed",
                "no_database",
                "partial",
                "remote",
                "internal"
            ]
        );
        for code in Code::ALL {
            // Bad input is exit 2 and a 4xx; a failure is exit 1 or a 5xx,
            // except a run another process holds or a source that changed,
            // which the caller resolves (409) but did not cause (exit 1).
            match code.exit_status() {
                2 => assert!(code.http_status() < 500 || code == Code::NoDatabase, "{code}"),
                1 => assert!(
                    matches!(
                        code,
                        Code::RunClaimed | Code::SourceChanged | Code::Partial | Code::Remote | Code::Internal
                    ),
                    "{code}"
                ),
                other => panic!("{code}: exit {other}"),
            }
        }
    }

    #[test]
    fn database_detail_stays_out_of_public_messages() {
        let e = Error::from(StoreError::decode("email", "row 7 says secret"));
        assert_eq!(e.code, Code::Internal);
        assert!(e.message.contains("secret"));
        assert_eq!(e.public_message(), "database error (db); the server's log has the detail");
        let open =
            Error::from(StoreError::Open { url: "/srv/ferry.db".to_owned(), reason: "permission denied".to_owned() });
        assert!(!open.public_message().contains("/srv"), "{}", open.public_message());
        assert!(open.full_text().contains("/srv/ferry.db"), "the CLI names the database");
        assert!(!open.database, "no `database <name>:` prefix twice");
        let none = Error::from(StoreError::NoDatabase { url: String::new(), reason: "names no database".to_owned() });
        assert_eq!((none.code, none.code.exit_status(), none.code.http_status()), (Code::NoDatabase, 2, 500));
        assert!(none.public_message().starts_with("database error (no_database)"));
        let refused = Error::from(CopyError::RollbackRefused { run: 3, blockers: vec!["run 4 first".to_owned()] });
        assert_eq!(refused.full_text(), "run 3 cannot be rolled back:\n  run 4 first");
        assert_eq!((refused.code.exit_status(), refused.code.http_status()), (2, 409));
    }
}
