//! ferry's domain. Pure: no IO, no async, no database.
//!
//! Each rule the spec names lives in exactly one place here and every surface
//! calls it: [`email::normalize`] for identity, [`access::can_view_request`]
//! for who may see a request, [`csv_guard::guard_cell`] for spreadsheet safety.

pub mod access;
pub mod csv_guard;
pub mod email;
pub mod model;
pub mod plan;
pub mod planner;
pub mod run;
pub mod search;
