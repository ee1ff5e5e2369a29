//! SPEC §8 against a fake JSM Cloud site (ferry_testkit::jira) that serves
//! §7 snapshot folders through Atlassian's endpoints, with their paging,
//! small page caps, throttling and hidden emails. The equivalence tests: a
//! pulled site is the site its snapshot imports as (export both and
//! compare), and `copy check` between pulled sites writes the same
//! RequiresAttention.csv as between imported ones. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ferry_jira::{AdminApi, Limits, PullConfig, PullError, PullReport, Secret, Silent};
use ferry_snapshot::{export_site, import_site};
use ferry_store::{Store, sites};
use ferry_testkit::jira::{FakeJira, FakeOptions, validate_against_reference};
use ferry_testkit::{Backend, TestDb, on_both_backends, story_dir};

fn config(fake: &FakeJira, options: &FakeOptions, admin: bool) -> PullConfig {
    PullConfig {
        site_url: fake.url(),
        email: options.email.clone(),
        token: Secret::new(options.token.clone()),
        admin: admin.then(|| AdminApi {
            url: fake.url(),
            org_id: options.org_id.clone(),
            key: Secret::new(options.admin_key.clone()),
        }),
        projects: None,
        limits: Limits::default(),
    }
}

fn pull(config: &PullConfig, dir: &Path) -> Result<PullReport, PullError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(ferry_jira::pull_snapshot(config, dir, &Silent))
}

fn export(store: &mut Store, site: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    export_site(store, site, dir.path()).unwrap();
    ferry_testkit::read_folder(dir.path())
}

fn create_sites(store: &mut Store, names: &[&str]) {
    store
        .write(|tx| {
            sites::create_org(tx, "acme")?;
            for name in names {
                sites::create_site(tx, "acme", name)?;
            }
            Ok::<_, ferry_store::StoreError>(())
        })
        .unwrap();
}

/// Pulls `snapshot` from a fake into site `site` of `pulled`, imports it
/// into site `site` of `imported`, and asserts the two export alike; also
/// that every answer the fake gave validates against Atlassian's schemas.
fn pull_and_import(pulled: &mut Store, imported: &mut Store, snapshot: &Path, site: &str) -> PullReport {
    let options = FakeOptions::default();
    let fake = FakeJira::start(snapshot, options.clone());
    let dir = tempfile::tempdir().unwrap();
    let report = pull(&config(&fake, &options, true), dir.path()).unwrap();
    import_site(pulled, site, dir.path(), &mut ferry_snapshot::Quiet).unwrap();
    import_site(imported, site, snapshot, &mut ferry_snapshot::Quiet).unwrap();
    assert_eq!(export(pulled, site), export(imported, site), "pulled {} differs from its import", snapshot.display());
    assert!(fake.stats().throttled > 0, "the fake throttled some requests and the pull went on");
    let validated = validate_against_reference(&fake.responses()).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(validated > 10, "{validated} answers validated");
    report
}

fn requires_attention(store: &mut Store, from: &str, to: &str) -> String {
    let plan = store.read(|tx| ferry_copy::plan_copy(tx, &ferry_copy::CopyOptions::between(from, to))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    ferry_copy::write_plan_report(&plan, dir.path()).unwrap();
    std::fs::read_to_string(dir.path().join("RequiresAttention.csv")).unwrap()
}

fn the_story_pulls_as_it_imports(backend: Backend) {
    let (pulled_db, imported_db) = (TestDb::new(backend), TestDb::new(backend));
    let (mut pulled, mut imported) = (pulled_db.store(), imported_db.store());
    create_sites(&mut pulled, &["eu", "us"]);
    create_sites(&mut imported, &["eu", "us"]);
    let report = pull_and_import(&mut pulled, &mut imported, &story_dir().join("eu"), "eu");
    assert!(report.hidden_emails.is_empty() && report.verification_checked);
    // The fake's app wrote one public comment: left out and counted.
    assert_eq!(report.skipped_comments, 1);
    pull_and_import(&mut pulled, &mut imported, &story_dir().join("us"), "us");
    let expected = std::fs::read_to_string(story_dir().join("RequiresAttention.csv")).unwrap();
    assert_eq!(requires_attention(&mut imported, "eu", "us"), expected);
    assert_eq!(requires_attention(&mut pulled, "eu", "us"), expected);
}

fn random_demo_sites_pull_as_they_import(backend: Backend) {
    for seed in [3, 11] {
        let (pulled_db, imported_db) = (TestDb::new(backend), TestDb::new(backend));
        let (mut pulled, mut imported) = (pulled_db.store(), imported_db.store());
        create_sites(&mut pulled, &["src", "dst"]);
        create_sites(&mut imported, &["src", "dst"]);
        let demo = tempfile::tempdir().unwrap();
        let (src, dst) = (demo.path().join("src"), demo.path().join("dst"));
        ferry_snapshot::demo::write_demo(&src, &dst, 90 + seed * 7, seed).unwrap();
        pull_and_import(&mut pulled, &mut imported, &src, "src");
        pull_and_import(&mut pulled, &mut imported, &dst, "dst");
        let expected = requires_attention(&mut imported, "src", "dst");
        assert!(expected.lines().count() > 5, "the demo meets problems: {expected}");
        assert_eq!(requires_attention(&mut pulled, "src", "dst"), expected, "seed {seed}");

        // Pulling again changes nothing.
        let before = export(&mut pulled, "src");
        let options = FakeOptions::default();
        let fake = FakeJira::start(&src, options.clone());
        let again = tempfile::tempdir().unwrap();
        pull(&config(&fake, &options, true), again.path()).unwrap();
        import_site(&mut pulled, "src", again.path(), &mut ferry_snapshot::Quiet).unwrap();
        assert_eq!(export(&mut pulled, "src"), before, "seed {seed}: a second pull changed the site");
    }
}

on_both_backends!(the_story_pulls_as_it_imports, random_demo_sites_pull_as_they_import);

/// Without the admin key a hidden email stays hidden: the account is kept
/// with an empty email and listed; with it, the directory tells the email.
/// Unmanaged accounts count as verified and are listed.
#[test]
fn hidden_emails_are_listed_or_read_from_the_directory() {
    let snapshot = story_dir().join("us");
    let options = FakeOptions {
        hidden_emails: BTreeSet::from(["aa-chen".to_owned(), "po-fay-us".to_owned()]),
        unmanaged: BTreeSet::from(["aa-eli".to_owned()]),
        ..FakeOptions::default()
    };
    let fake = FakeJira::start(&snapshot, options.clone());
    let dir = tempfile::tempdir().unwrap();
    let report = pull(&config(&fake, &options, false), dir.path()).unwrap();
    assert!(!report.verification_checked);
    let hidden: Vec<&str> = report.hidden_emails.iter().map(|h| h.account_id.as_str()).collect();
    assert_eq!(hidden, ["aa-chen", "po-fay-us"]);
    let accounts = std::fs::read_to_string(dir.path().join("accounts.csv")).unwrap();
    assert!(accounts.contains("aa-chen,atlassian,,Chen,true,true"), "{accounts}");
    assert!(accounts.contains("po-fay-us,customer,,Fay,true,true"), "{accounts}");

    let with_key = tempfile::tempdir().unwrap();
    let report = pull(&config(&fake, &options, true), with_key.path()).unwrap();
    let hidden: Vec<&str> = report.hidden_emails.iter().map(|h| h.account_id.as_str()).collect();
    assert_eq!(hidden, ["po-fay-us"], "the directory knows Atlassian accounts only");
    assert_eq!(report.unmanaged, ["aa-eli"]);
    let accounts = std::fs::read_to_string(with_key.path().join("accounts.csv")).unwrap();
    assert!(accounts.contains("aa-chen,atlassian,chen@acme.test,Chen,true,true"), "{accounts}");
    validate_against_reference(&fake.responses()).unwrap_or_else(|e| panic!("{}", e.join("\n")));
}

/// A refused credential stops the pull naming the path and the status,
/// never the token, and leaves no snapshot behind.
#[test]
fn errors_name_path_and_status_never_the_token_and_write_nothing() {
    let options = FakeOptions::default();
    let fake = FakeJira::start(&story_dir().join("eu"), options.clone());
    let mut wrong = config(&fake, &options, false);
    wrong.token = Secret::new("s3cret-wrong-token");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot");
    let error = pull(&wrong, &out).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("/rest/servicedeskapi/servicedesk") && text.contains("401"), "{text}");
    assert!(!text.contains("s3cret") && !format!("{error:?}").contains("s3cret"), "{text}");
    assert!(!format!("{wrong:?}").contains("s3cret"), "a config's Debug shows no secret");
    assert!(!out.exists(), "nothing written");

    // An unknown project is named before anything is written.
    let mut projects = config(&fake, &options, false);
    projects.projects = Some(vec!["NOPE".to_owned()]);
    let text = pull(&projects, &out).unwrap_err().to_string();
    assert!(text.contains("NOPE") && text.contains("SUP"), "{text}");
    assert!(!out.exists());
}

/// `--projects` keeps the chosen desks (and every organization); a user
/// search over its time limit (409) is asked again with smaller pages; a
/// server that is never available gives up after the bounded retries.
#[test]
fn projects_filter_smaller_pages_and_bounded_retries() {
    let demo = tempfile::tempdir().unwrap();
    let (src, dst) = (demo.path().join("src"), demo.path().join("dst"));
    ferry_snapshot::demo::write_demo(&src, &dst, 40, 5).unwrap();
    let options = FakeOptions { users_search_limit: Some(2), ..FakeOptions::default() };
    let fake = FakeJira::start(&src, options.clone());
    let mut only_its = config(&fake, &options, true);
    only_its.projects = Some(vec!["ITS".to_owned()]);
    let dir = tempfile::tempdir().unwrap();
    let report = pull(&only_its, dir.path()).unwrap();
    let snapshot = ferry_testkit::read_folder(dir.path());
    assert_eq!(snapshot["projects.csv"], "project_key,name\nITS,IT Service\n");
    assert!(snapshot["requests.csv"].lines().skip(1).all(|l| l.starts_with("ITS-")));
    assert!(snapshot["customers.csv"].lines().skip(1).all(|l| l.starts_with("ITS,")));
    let names = |text: &str| -> BTreeSet<String> {
        text.lines().skip(1).map(|l| l.split(',').next().unwrap_or_default().to_owned()).collect()
    };
    let organizations = std::fs::read_to_string(src.join("organizations.csv")).unwrap();
    assert_eq!(
        names(&snapshot["organizations.csv"]),
        names(&organizations),
        "every organization, whatever --projects says"
    );
    assert!(report.requests > 0);

    // Every request throttled: the pull retries a bounded number of times.
    let stubborn = FakeOptions { throttle_every: Some(1), ..FakeOptions::default() };
    let fake = FakeJira::start(&src, stubborn.clone());
    let mut config = config(&fake, &stubborn, false);
    config.limits.retries = 2;
    let error = pull(&config, &dir.path().join("never")).unwrap_err().to_string();
    assert!(error.contains("429") && error.contains("after 2 retries"), "{error}");
    assert_eq!(fake.stats().requests, 3, "one try and two retries");
}
