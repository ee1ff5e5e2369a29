//! The fake Jira Service Management Cloud site as a program, for benchmarks
//! (`scripts/bench-pull.sh`): serves a snapshot folder until killed.
//!
//!   fake_jira <snapshot-dir> [--page-cap N] [--throttle-every N|0]
//!
//! Prints one line `url=<url>` to stdout once it is listening (the base URL
//! of both the Jira site and the organization admin API), then serves until
//! SIGTERM or ctrl-c and prints what it served to stderr (SIGUSR1 prints the
//! totals so far and goes on). Credentials are
//! the fake's defaults: `admin@example.test` / `fake-token`, admin key
//! `fake-admin-key` for organization `fake-org`.
//!
//! Unlike the tests, it defaults to a realistic page cap of 50 (Atlassian's
//! cap on servicedeskapi lists; platform lists cap at 50-100) and no
//! throttling, so a benchmark measures ferry rather than a chatty fake.
//! Responses are not recorded (that would keep every body in memory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::PathBuf;

use ferry_testkit::jira::{FakeJira, FakeOptions};

const USAGE: &str = "usage: fake_jira <snapshot-dir> [--page-cap N] [--throttle-every N|0]";

fn main() {
    let mut snapshot: Option<PathBuf> = None;
    let mut page_cap: usize = 50;
    let mut throttle_every: u64 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--page-cap" => {
                page_cap = args.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(|| usage());
            }
            "--throttle-every" => {
                throttle_every = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ if snapshot.is_none() && !arg.starts_with("--") => snapshot = Some(PathBuf::from(arg)),
            _ => usage(),
        }
    }
    let snapshot = snapshot.unwrap_or_else(|| usage());

    let options = FakeOptions {
        page_cap,
        throttle_every: (throttle_every > 0).then_some(throttle_every),
        ..FakeOptions::default()
    };
    let fake = FakeJira::start(&snapshot, options);
    fake.set_recording(false);

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "url={}", fake.url()).expect("write to stdout");
    stdout.flush().expect("flush stdout");
    drop(stdout);

    // The server runs on its own thread; this one only waits for signals:
    // SIGUSR1 prints the stats so far and goes on, SIGTERM or ctrl-c prints
    // them and exits.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = usr1.recv() => print_stats(&fake, page_cap, throttle_every, false),
            }
        }
    });
    print_stats(&fake, page_cap, throttle_every, true);
    drop(fake);
}

/// One line of totals to stderr; with `per_path`, the requests per path
/// template after it.
fn print_stats(fake: &FakeJira, page_cap: usize, throttle_every: u64, per_path: bool) {
    let stats = fake.stats();
    let throttle = if throttle_every == 0 { "never".to_owned() } else { throttle_every.to_string() };
    eprintln!(
        "fake_jira: requests={} throttled={} max_in_flight={} (page cap {page_cap}, throttle every {throttle})",
        stats.requests, stats.throttled, stats.max_in_flight
    );
    if per_path {
        for (template, count) in &stats.by_template {
            eprintln!("fake_jira:   {count:>9}  {template}");
        }
    }
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}
