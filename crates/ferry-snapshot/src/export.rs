//! `site export`: writes every snapshot file of a site, sorted so that the
//! same site always gives the same bytes. Files are written beside their
//! final names and renamed only when all are complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ferry_store::{Backend, Store, StoreError, Tx, Val, sites};

use crate::FILES;
use crate::import::ImportError;

/// Exports site `site` into `dir` (created if missing). Returns rows per
/// file. An unknown site is refused before the folder is made; an export
/// that fails removes its partial files (and the folder, if it made it).
pub fn export_site(store: &mut Store, site: &str, dir: &Path) -> Result<Vec<(&'static str, u64)>, ImportError> {
    store.read(|tx| sites::site(tx, site))?;
    let existed = dir.exists();
    // Each file is sorted whole (millions of rows at scale): on SQLite in
    // temporary files, so memory does not grow with the site.
    let result = store.with_temp_files(|store| export_into(store, site, dir));
    if result.is_err() {
        for (name, _) in FILES {
            let _ = std::fs::remove_file(dir.join(format!(".{name}.partial")));
        }
        if !existed {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

fn export_into(store: &mut Store, site: &str, dir: &Path) -> Result<Vec<(&'static str, u64)>, ImportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ImportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let backend = store.backend();
    let counts = store.read(|tx| -> Result<_, ImportError> {
        let site = sites::site(tx, site)?;
        let mut counts = Vec::new();
        for (name, header) in FILES {
            let temp = dir.join(format!(".{name}.partial"));
            let file = File::create(&temp).map_err(io(&temp))?;
            let mut out = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 20, file));
            out.write_record(header).map_err(|e| csv_io(&temp, e))?;
            let rows = write_rows(tx, backend, name, site.id, &mut out).map_err(|e| match e {
                WriteError::Csv(e) => csv_io(&temp, e),
                WriteError::Store(e) => ImportError::Store(e),
            })?;
            out.flush().map_err(io(&temp))?;
            counts.push((name, rows));
        }
        Ok(counts)
    })?;
    for (name, _) in FILES {
        let temp = dir.join(format!(".{name}.partial"));
        std::fs::rename(&temp, dir.join(name)).map_err(io(&temp))?;
    }
    Ok(counts)
}

fn csv_io(path: &Path, e: csv::Error) -> ImportError {
    ImportError::Io { path: path.to_owned(), source: std::io::Error::other(e.to_string()) }
}

enum WriteError {
    Csv(csv::Error),
    Store(StoreError),
}

fn bool_text(v: bool) -> &'static str {
    if v { "true" } else { "false" }
}

fn write_rows(
    tx: &mut Tx<'_>,
    backend: Backend,
    file: &str,
    site_id: i64,
    out: &mut csv::Writer<BufWriter<File>>,
) -> Result<u64, WriteError> {
    let participants = match backend {
        Backend::Sqlite => "group_concat(pa.ext_id, ';' ORDER BY pa.ext_id)",
        Backend::Postgres => "string_agg(pa.ext_id, ';' ORDER BY pa.ext_id)",
    };
    let sql = match file {
        "accounts.csv" => "SELECT ext_id, kind, email, display_name, active, email_verified FROM (
                SELECT ext_id, kind, email, display_name, active, email_verified FROM accounts WHERE site_id = $1
                UNION ALL
                SELECT a.ext_id, a.kind, a.email, a.display_name, a.active, a.email_verified
                FROM site_users su JOIN accounts a ON a.id = su.account_id WHERE su.site_id = $1) x
            ORDER BY ext_id, kind"
            .to_owned(),
        "projects.csv" => "SELECT key, name FROM projects WHERE site_id = $1 ORDER BY key".to_owned(),
        "groups.csv" => "SELECT g.name, COALESCE(a.ext_id, ''), g.state FROM groups g
                LEFT JOIN group_members gm ON gm.group_id = g.id
                LEFT JOIN accounts a ON a.id = gm.account_id
            WHERE g.site_id = $1 ORDER BY g.name_key, g.name, 2"
            .to_owned(),
        "customer_roles.csv" => "SELECT p.key, g.name FROM customer_roles cr
                JOIN projects p ON p.id = cr.project_id JOIN groups g ON g.id = cr.group_id
            WHERE p.site_id = $1 ORDER BY p.key, g.name_key"
            .to_owned(),
        "organizations.csv" => "SELECT o.name, COALESCE(a.ext_id, '') FROM organizations o
                LEFT JOIN organization_members m ON m.organization_id = o.id
                LEFT JOIN accounts a ON a.id = m.account_id
            WHERE o.site_id = $1 ORDER BY o.name, 2"
            .to_owned(),
        "organization_projects.csv" => "SELECT o.name, p.key FROM organization_projects op
                JOIN organizations o ON o.id = op.organization_id JOIN projects p ON p.id = op.project_id
            WHERE o.site_id = $1 ORDER BY o.name, p.key"
            .to_owned(),
        "customers.csv" => "SELECT p.key, a.ext_id FROM project_customers pc
                JOIN projects p ON p.id = pc.project_id JOIN accounts a ON a.id = pc.account_id
            WHERE p.site_id = $1 ORDER BY p.key, a.ext_id"
            .to_owned(),
        "requests.csv" => format!(
            "SELECT p.key || '-' || r.number, p.key, r.summary, r.status, r.created, rep.ext_id,
                    COALESCE((SELECT {participants} FROM request_participants rp
                              JOIN accounts pa ON pa.id = rp.account_id WHERE rp.request_id = r.id), ''),
                    COALESCE(o.name, '')
             FROM requests r JOIN projects p ON p.id = r.project_id
                  JOIN accounts rep ON rep.id = r.reporter_id
                  LEFT JOIN organizations o ON o.id = r.organization_id
             WHERE r.site_id = $1 ORDER BY p.key, r.number"
        ),
        "comments.csv" => "SELECT p.key || '-' || r.number, a.ext_id, c.created, c.body FROM comments c
                JOIN requests r ON r.id = c.request_id JOIN projects p ON p.id = r.project_id
                JOIN accounts a ON a.id = c.author_id
            WHERE r.site_id = $1 ORDER BY p.key, r.number, c.created, c.id"
            .to_owned(),
        _ => return Ok(0),
    };
    let mut rows = 0u64;
    let mut failure = None;
    let columns = FILES.iter().find(|(n, _)| *n == file).map_or(0, |(_, h)| h.len());
    tx.query_each(&sql, &[Val::I(site_id)], |r| {
        let mut record = csv::StringRecord::new();
        for i in 0..columns {
            if file == "accounts.csv" && (i == 4 || i == 5) {
                record.push_field(bool_text(r.bool(i)?));
            } else {
                record.push_field(r.text(i)?);
            }
        }
        if let Err(e) = out.write_record(&record) {
            failure.get_or_insert(e);
        }
        rows += 1;
        Ok(())
    })
    .map_err(WriteError::Store)?;
    match failure {
        Some(e) => Err(WriteError::Csv(e)),
        None => Ok(rows),
    }
}
