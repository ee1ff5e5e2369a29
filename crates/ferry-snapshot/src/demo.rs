//! The demo generator (`ferry demo`): two snapshot folders, `demo-src` and
//! `demo-dst`, whose copy meets every outcome of SPEC §3. The same seed
//! always gives the same bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use unicode_normalization::UnicodeNormalization;

/// The situation a demo customer is generated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoCase {
    /// Case 1: portal-only on source, nothing on destination.
    PortalNew,
    /// Case 2: portal-only on both.
    PortalExisting,
    /// Case 3: portal-only on source, verified Atlassian account on destination.
    PortalMatchesAtlassian,
    /// Case 4: Atlassian account on source only.
    AtlassianNew,
    /// Case 5: the same Atlassian account on both.
    AtlassianExisting,
    /// Case 6: Atlassian account on source, portal-only on destination.
    AtlassianMatchesPortal,
    /// Portal-only on source; the destination's Atlassian account has an
    /// unverified email.
    UnverifiedAtlassian,
    /// Portal-only on source; destination holds both types.
    PortalToBoth,
    /// Atlassian account on source; destination holds both types.
    AtlassianToBoth,
    /// Inactive portal-only account on source.
    InactiveOnSource,
    /// Active on source; the destination's portal-only account is inactive.
    InactiveOnDestination,
}

/// Every case with its share of customers in percent.
pub const CASES: [(DemoCase, u64); 11] = [
    (DemoCase::PortalNew, 30),
    (DemoCase::PortalExisting, 10),
    (DemoCase::PortalMatchesAtlassian, 10),
    (DemoCase::AtlassianNew, 20),
    (DemoCase::AtlassianExisting, 10),
    (DemoCase::AtlassianMatchesPortal, 10),
    (DemoCase::UnverifiedAtlassian, 3),
    (DemoCase::PortalToBoth, 2),
    (DemoCase::AtlassianToBoth, 2),
    (DemoCase::InactiveOnSource, 2),
    (DemoCase::InactiveOnDestination, 1),
];

pub const SOURCE_SITE: &str = "demo-src";
pub const DESTINATION_SITE: &str = "demo-dst";
pub const ORG: &str = "demo";

const FIRST: [&str; 12] =
    ["alice", "bruno", "chen", "dana", "eli", "fay", "José", "zoë", "mårten", "amélie", "øyvind", "noor"];
const LAST: [&str; 8] = ["smith", "murphy", "garcía", "nguyen", "müller", "kowalski", "okafor", "dubois"];
const DOMAINS: [&str; 4] = ["acme.test", "example.com", "globex.test", "initech.example"];
const SUMMARIES: [&str; 8] = [
    "Cannot log in",
    "Invoice missing",
    "Laptop broken",
    "New account",
    "Password reset",
    "Refund",
    "VPN drops, every hour",
    "Printer says \"out of paper\"",
];
const STATUSES: [&str; 3] = ["Open", "In progress", "Resolved"];

/// How many rows each demo file got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoCounts {
    pub source_customers: u64,
    pub source_requests: u64,
    pub destination_accounts: u64,
    pub per_case: Vec<(DemoCase, u64)>,
}

struct Csv {
    out: BufWriter<File>,
}

impl Csv {
    fn create(dir: &Path, name: &str, header: &str) -> std::io::Result<Csv> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.join(name))?);
        writeln!(out, "{header}")?;
        Ok(Csv { out })
    }

    fn row(&mut self, cells: &[&str]) -> std::io::Result<()> {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            if cell.contains([',', '"', '\n', '\r']) {
                write!(self.out, "\"{}\"", cell.replace('"', "\"\""))?;
            } else {
                self.out.write_all(cell.as_bytes())?;
            }
        }
        self.out.write_all(b"\n")
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Rows only (no header), in an unnamed temporary file, to be appended
    /// to another ([`Csv::append`]): nothing is left behind if the demo
    /// stops midway.
    fn part() -> std::io::Result<Csv> {
        Ok(Csv { out: BufWriter::with_capacity(1 << 20, tempfile::tempfile()?) })
    }

    /// Appends the rows of `part` (made by [`Csv::part`]).
    fn append(&mut self, part: Csv) -> std::io::Result<()> {
        let mut file = part.out.into_inner().map_err(|e| e.into_error())?;
        std::io::Seek::rewind(&mut file)?;
        std::io::copy(&mut file, &mut self.out)?;
        Ok(())
    }
}

fn header(name: &str) -> String {
    crate::FILES.iter().find(|(n, _)| *n == name).map(|(_, h)| h.join(",")).unwrap_or_default()
}

/// One snapshot folder being written.
struct SiteFiles {
    accounts: Csv,
    customers: Csv,
    requests: Csv,
    comments: Csv,
    organizations: Csv,
}

impl SiteFiles {
    fn create(dir: &Path) -> std::io::Result<SiteFiles> {
        std::fs::create_dir_all(dir)?;
        let open = |name: &str| Csv::create(dir, name, &header(name));
        Ok(SiteFiles {
            accounts: open("accounts.csv")?,
            customers: open("customers.csv")?,
            requests: open("requests.csv")?,
            comments: open("comments.csv")?,
            organizations: open("organizations.csv")?,
        })
    }

    fn finish(self) -> std::io::Result<()> {
        self.accounts.finish()?;
        self.customers.finish()?;
        self.requests.finish()?;
        self.comments.finish()?;
        self.organizations.finish()
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[(rng.next_u64() % items.len() as u64) as usize]
}

fn timestamp(minutes: u64) -> String {
    // 2025-01-01T00:00:00Z plus `minutes`, without a date library round trip.
    let total = minutes % (365 * 24 * 60);
    let (day, minute) = (total / (24 * 60), total % (24 * 60));
    let months = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut month, mut day_of_month) = (0usize, day);
    while day_of_month >= months[month] {
        day_of_month -= months[month];
        month += 1;
    }
    format!("2025-{:02}-{:02}T{:02}:{:02}:00Z", month + 1, day_of_month + 1, minute / 60, minute % 60)
}

/// Writes the demo snapshots for `customers` source customers into
/// `source_dir` and `destination_dir`.
pub fn write_demo(source_dir: &Path, destination_dir: &Path, customers: u64, seed: u64) -> std::io::Result<DemoCounts> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut src = SiteFiles::create(source_dir)?;
    let mut dst = SiteFiles::create(destination_dir)?;
    let mut counts = DemoCounts { per_case: CASES.iter().map(|(c, _)| (*c, 0)).collect(), ..DemoCounts::default() };

    let mut src_projects = Csv::create(source_dir, "projects.csv", &header("projects.csv"))?;
    src_projects.row(&["SUP", "Support"])?;
    src_projects.row(&["ITS", "IT Service"])?;
    src_projects.finish()?;
    let mut dst_projects = Csv::create(destination_dir, "projects.csv", &header("projects.csv"))?;
    dst_projects.row(&["DESK", "Service Desk"])?;
    dst_projects.finish()?;
    let mut groups = Csv::create(source_dir, "groups.csv", &header("groups.csv"))?;
    groups.row(&["vip-customers", "", "active"])?;
    let mut roles = Csv::create(source_dir, "customer_roles.csv", &header("customer_roles.csv"))?;
    roles.row(&["ITS", "vip-customers"])?;
    roles.finish()?;
    dst.organizations.row(&["Partners", ""])?;

    // The source's requests are listed a project at a time (ITS, then SUP),
    // as an export lists them: an import holds a run of consecutive
    // requests as one entry, not one entry per request (at ten million
    // customers, 20 million requests in random project order took 600 MB).
    let mut sup_requests = Csv::part()?;
    let (mut sup_number, mut its_number, mut desk_number) = (0u64, 0u64, 0u64);
    let mut previous_src_account: Option<String> = None;
    let organization_size = 50;
    for i in 0..customers {
        // The first customers walk through every case so that even a tiny
        // demo meets each outcome; the rest follow the shares.
        let case = if (i as usize) < CASES.len() {
            CASES[i as usize].0
        } else {
            let mut roll = rng.next_u64() % 100;
            let mut chosen = CASES[0].0;
            for (case, share) in CASES {
                if roll < share {
                    chosen = case;
                    break;
                }
                roll -= share;
            }
            chosen
        };
        if let Some(entry) = counts.per_case.iter_mut().find(|(c, _)| *c == case) {
            entry.1 += 1;
        }
        let first = pick(&mut rng, &FIRST);
        let last = pick(&mut rng, &LAST);
        let domain = pick(&mut rng, &DOMAINS);
        let base = if i == 2 { format!("=cmd.{first}{i}") } else { format!("{first}.{last}{i}") };
        let display = format!("{} {}", capitalize(first), capitalize(last));
        // Source and destination spell some addresses differently; only the
        // normalized form matches them.
        let src_email = match i % 5 {
            0 => format!("{}@{}", capitalize(&base), domain.to_uppercase()),
            1 => format!("{base}@{domain}").nfd().collect(),
            _ => format!("{base}@{domain}"),
        };
        let dst_email: String = format!("{base}@{domain}").nfc().collect();

        let portal_src = matches!(
            case,
            DemoCase::PortalNew
                | DemoCase::PortalExisting
                | DemoCase::PortalMatchesAtlassian
                | DemoCase::UnverifiedAtlassian
                | DemoCase::PortalToBoth
                | DemoCase::InactiveOnSource
                | DemoCase::InactiveOnDestination
        );
        let src_id = if portal_src { format!("qm-src-{i}") } else { format!("aa-{i}") };
        let src_active = case != DemoCase::InactiveOnSource;
        src.accounts.row(&[
            &src_id,
            if portal_src { "customer" } else { "atlassian" },
            &src_email,
            &display,
            bool_text(src_active),
            "true",
        ])?;

        // The destination's side of the case.
        let dst_portal = matches!(
            case,
            DemoCase::PortalExisting
                | DemoCase::AtlassianMatchesPortal
                | DemoCase::PortalToBoth
                | DemoCase::AtlassianToBoth
                | DemoCase::InactiveOnDestination
        );
        if dst_portal {
            let dst_id = format!("qm-dst-{i}");
            let active = case != DemoCase::InactiveOnDestination;
            dst.accounts.row(&[&dst_id, "customer", &dst_email, &display, bool_text(active), "true"])?;
            dst.customers.row(&["DESK", &dst_id])?;
            desk_number += 1;
            let key = format!("DESK-{desk_number}");
            let created = timestamp(i);
            dst.requests.row(&[&key, "DESK", pick(&mut rng, &SUMMARIES), "Open", &created, &dst_id, "", ""])?;
            counts.destination_accounts += 1;
        }
        match case {
            DemoCase::AtlassianExisting | DemoCase::AtlassianToBoth => {
                dst.accounts.row(&[&src_id, "atlassian", &src_email, &display, "true", "true"])?;
                counts.destination_accounts += 1;
            }
            DemoCase::PortalMatchesAtlassian | DemoCase::UnverifiedAtlassian | DemoCase::PortalToBoth => {
                let verified = case != DemoCase::UnverifiedAtlassian;
                let dst_id = format!("aa-dst-{i}");
                dst.accounts.row(&[&dst_id, "atlassian", &dst_email, &display, "true", bool_text(verified)])?;
                dst.customers.row(&["DESK", &dst_id])?;
                counts.destination_accounts += 1;
            }
            _ => {}
        }

        // Source access: most are on a customer list; some Atlassian
        // accounts hold ITS's Customer role through the VIP group only.
        let in_vip = !portal_src && i % 7 == 3;
        let project = if in_vip || i % 3 == 0 { "ITS" } else { "SUP" };
        if in_vip {
            groups.row(&["vip-customers", &src_id, "active"])?;
        } else {
            src.customers.row(&[project, &src_id])?;
        }
        let organization = format!("Org {}", i / organization_size + 1);
        if i % organization_size == 0 {
            src.organizations.row(&[&organization, ""])?;
        }
        if i % 4 == 0 {
            src.organizations.row(&[&organization, &src_id])?;
        }

        let request_count = 1 + rng.next_u64() % 3;
        for r in 0..request_count {
            let number = if project == "ITS" {
                its_number += 1;
                its_number
            } else {
                sup_number += 1;
                sup_number
            };
            let key = format!("{project}-{number}");
            let participants = match (&previous_src_account, rng.next_u64() % 10) {
                (Some(other), 0) => other.clone(),
                _ => String::new(),
            };
            let shared = if project == "SUP" && i % 4 == 0 && r == 0 { organization.as_str() } else { "" };
            let created = timestamp(i * 3 + r);
            let status = pick(&mut rng, &STATUSES);
            let summary = pick(&mut rng, &SUMMARIES);
            let requests = if project == "ITS" { &mut src.requests } else { &mut sup_requests };
            requests.row(&[&key, project, summary, status, &created, &src_id, &participants, shared])?;
            counts.source_requests += 1;
            if rng.next_u64() % 2 == 0 {
                let body = format!("Thanks, {}. We are on it.\nRegards, the {project} team", capitalize(first));
                src.comments.row(&[&key, &src_id, &timestamp(i * 3 + r + 1), &body])?;
            }
        }
        previous_src_account = Some(src_id);
        counts.source_customers += 1;
    }
    groups.finish()?;
    let mut organization_projects =
        Csv::create(source_dir, "organization_projects.csv", &header("organization_projects.csv"))?;
    for organization in 0..customers.div_ceil(organization_size) {
        organization_projects.row(&[&format!("Org {}", organization + 1), "SUP"])?;
    }
    organization_projects.finish()?;
    src.requests.append(sup_requests)?;
    src.finish()?;
    dst.finish()?;
    Ok(counts)
}

fn bool_text(v: bool) -> &'static str {
    if v { "true" } else { "false" }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Creates organization `demo` with sites `demo-src` and `demo-dst` holding
/// the demo data, all in one transaction: either the whole demo exists
/// afterwards or nothing was written.
pub fn load_demo(
    store: &mut ferry_store::Store,
    customers: u64,
    seed: u64,
    progress: &mut dyn crate::Progress,
) -> Result<DemoCounts, crate::ImportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| crate::ImportError::Io { path, source }
    };
    let scratch = tempfile::tempdir().map_err(io(&std::env::temp_dir()))?;
    let (src_dir, dst_dir) = (scratch.path().join(SOURCE_SITE), scratch.path().join(DESTINATION_SITE));
    let counts = write_demo(&src_dir, &dst_dir, customers, seed).map_err(io(scratch.path()))?;
    let actor = store.actor().to_owned();
    store.write_checked_bulk(|tx| {
        let after = serde_json::json!({ "customers": customers, "seed": seed }).to_string();
        ferry_store::audit::record(
            tx,
            ferry_store::audit::Action {
                actor: &actor,
                action: "demo.create",
                site_id: None,
                target: ORG,
                before: None,
                after: Some(&after),
            },
        )?;
        ferry_store::sites::create_org(tx, ORG)?;
        ferry_store::sites::create_site(tx, ORG, SOURCE_SITE)?;
        ferry_store::sites::create_site(tx, ORG, DESTINATION_SITE)?;
        crate::import_into(tx, SOURCE_SITE, &src_dir, progress)?;
        crate::import_into(tx, DESTINATION_SITE, &dst_dir, progress)?;
        Ok(counts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_valid_and_ordered() {
        assert_eq!(timestamp(0), "2025-01-01T00:00:00Z");
        assert_eq!(timestamp(31 * 24 * 60 + 61), "2025-02-01T01:01:00Z");
        for minutes in [0, 59, 1440 * 58, 1440 * 364 + 1439] {
            assert!(ferry_core::model::canonical_timestamp(&timestamp(minutes)).is_ok());
        }
    }

    /// The source's requests come a project at a time, numbers in order
    /// (as an export lists them), so an import holds them as a few runs.
    #[test]
    fn the_source_lists_its_requests_a_project_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let counts = write_demo(&dir.path().join("src"), &dir.path().join("dst"), 500, 3).unwrap();
        let text = std::fs::read_to_string(dir.path().join("src/requests.csv")).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let keys: Vec<(String, u64)> = reader
            .records()
            .map(|r| {
                let key = r.unwrap()[0].to_owned();
                let (project, number) = key.split_once('-').unwrap();
                (project.to_owned(), number.parse().unwrap())
            })
            .collect();
        assert_eq!(keys.len() as u64, counts.source_requests);
        let projects: Vec<&str> = keys.iter().map(|(p, _)| p.as_str()).collect();
        let mut blocks = projects.clone();
        blocks.dedup();
        assert_eq!(blocks, ["ITS", "SUP"]);
        for pair in keys.windows(2).filter(|w| w[0].0 == w[1].0) {
            assert_eq!(pair[1].1, pair[0].1 + 1, "{pair:?}");
        }
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("src")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| n.to_string_lossy().ends_with(".csv")), "{names:?}");
    }

    #[test]
    fn the_first_customers_walk_through_every_case() {
        let dir = std::env::temp_dir().join(format!("ferry-demo-test-{}", std::process::id()));
        let counts = write_demo(&dir.join("src"), &dir.join("dst"), CASES.len() as u64, 1).unwrap();
        assert!(counts.per_case.iter().all(|(_, n)| *n == 1), "{counts:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
