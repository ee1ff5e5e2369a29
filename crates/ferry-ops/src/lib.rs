//! ferry's business operations, called alike by the `ferry` command and the
//! server, and ferry's one error type: every failure of every layer becomes
//! an [`Error`] whose [`Code`] decides both the CLI's exit status and the
//! API's HTTP status.

pub mod access;
pub mod admin;
pub mod error;
pub mod pull;
pub mod secrets;

pub use error::{Code, Error, Result};
