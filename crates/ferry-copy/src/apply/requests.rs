//! Requests, participants and comments: read from the source a chunk at a
//! time in id order, mapped through the run's decisions, bulk-written.

#[allow(unused_imports)]
use super::*;

/// The source rows of one chunk of the requests phase: the requests with
/// ids in `(from, to]`, and the participants and comments of every request
/// in that range (those of requests outside the run's projects are skipped
/// when written). Text lives in one buffer.
pub(super) struct SourceChunk {
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) requests: Vec<SourceRequest>,
    pub(super) participants: Vec<(i64, i64)>,
    pub(super) comments: Vec<SourceComment>,
    pub(super) text: String,
}

pub(super) type Span = (usize, usize);

pub(super) struct SourceRequest {
    pub(super) id: i64,
    pub(super) project: i64,
    pub(super) number: i64,
    pub(super) reporter: i64,
    pub(super) organization: Option<i64>,
    pub(super) summary: Span,
    pub(super) status: Span,
    pub(super) created: Span,
}

pub(super) struct SourceComment {
    pub(super) request: i64,
    pub(super) author: i64,
    pub(super) created: Span,
    pub(super) body: Span,
}

impl SourceChunk {
    fn keep(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        (start, self.text.len())
    }

    fn text(&self, (start, end): Span) -> &str {
        &self.text[start..end]
    }
}

/// A chunk read by another connection, and the cursor it was read from.
pub(super) struct Prefetched {
    pub(super) from: i64,
    /// `None`: no request is left after `from`.
    pub(super) chunk: Option<SourceChunk>,
}

/// Reads the next chunk of the requests phase after `from`: the source
/// only, so another connection can read it ahead of the writer.
pub(super) fn read_chunk(
    tx: &mut Tx<'_>,
    run_id: i64,
    row: &RunRow,
    from: i64,
) -> Result<Option<SourceChunk>, CopyError> {
    // The run's first request above `from`, found through the index on
    // (project, id): between `from` and it lie other sites' requests (the
    // destination's copies among them), which a re-run must not read. From
    // there the requests are read in id order, the projects' and others'
    // together, as they lie.
    let first = tx
        .query_opt(
            "SELECT MIN(first) FROM (SELECT (SELECT r.id FROM requests r
                 WHERE r.project_id = cp.source_project_id AND r.id > $2 ORDER BY r.id LIMIT 1) AS first
             FROM copy_projects cp WHERE cp.run_id = $1) firsts",
            &[Val::I(run_id), Val::I(from)],
            |r| r.opt_int(0),
        )?
        .flatten();
    let Some(first) = first.filter(|first| *first <= row.source_request_limit) else { return Ok(None) };
    let start = first - 1;
    let end = tx
        .query_opt(
            "SELECT MAX(id) FROM (SELECT r.id FROM requests r
               JOIN copy_projects cp ON cp.run_id = $1 AND cp.source_project_id = +r.project_id
               WHERE r.id > $2 AND r.id <= $3 ORDER BY r.id LIMIT $4) chunk",
            &[Val::I(run_id), Val::I(start), Val::I(row.source_request_limit), Val::I(chunk(REQUEST_CHUNK))],
            |r| r.opt_int(0),
        )?
        .flatten();
    let Some(to) = end else { return Ok(None) };
    // Rows of other projects in the range are dropped while copying.
    let range = [Val::I(start), Val::I(to)];
    let mut chunk = SourceChunk {
        from,
        to,
        requests: Vec::new(),
        participants: Vec::new(),
        comments: Vec::new(),
        text: String::new(),
    };
    tx.query_each(
        "SELECT id, project_id, number, summary, status, created, reporter_id, organization_id
         FROM requests WHERE id > $1 AND id <= $2 ORDER BY id",
        &range,
        |r| {
            let request = SourceRequest {
                id: r.int(0)?,
                project: r.int(1)?,
                number: r.int(2)?,
                summary: chunk.keep(r.text(3)?),
                status: chunk.keep(r.text(4)?),
                created: chunk.keep(r.text(5)?),
                reporter: r.int(6)?,
                organization: r.opt_int(7)?,
            };
            chunk.requests.push(request);
            Ok(())
        },
    )?;
    tx.query_each(
        "SELECT request_id, account_id FROM request_participants WHERE request_id > $1 AND request_id <= $2",
        &range,
        |r| {
            chunk.participants.push((r.int(0)?, r.int(1)?));
            Ok(())
        },
    )?;
    tx.query_each(
        "SELECT request_id, author_id, created, body FROM comments WHERE request_id > $1 AND request_id <= $2 ORDER BY id",
        &range,
        |r| {
            let comment = SourceComment {
                request: r.int(0)?,
                author: r.int(1)?,
                created: chunk.keep(r.text(2)?),
                body: chunk.keep(r.text(3)?),
            };
            chunk.comments.push(comment);
            Ok(())
        },
    )?;
    Ok(Some(chunk))
}

/// Copies the requests of `source` in the run's projects that no run has
/// copied yet, with their participants and comments: mapped through the
/// run's decisions, written in bulk. New requests take the ids after the
/// largest one, in source order, so a resumed chunk gives exactly what an
/// uninterrupted one gives.
pub(super) fn copy_requests(
    tx: &mut Tx<'_>,
    run_id: i64,
    row: &RunRow,
    maps: &RunMaps,
    source: &SourceChunk,
) -> Result<usize, CopyError> {
    let (s, d) = (row.source.id, row.destination.id);
    let mut request_ids = IdAllocator::start(tx, "requests")?;
    let mut linked = FxHashSet::default();
    tx.query_each(
        "SELECT source_id FROM copy_links WHERE source_site_id = $1 AND destination_site_id = $2
         AND kind = 'request' AND source_id > $3 AND source_id <= $4",
        &[Val::I(s), Val::I(d), Val::I(source.from), Val::I(source.to)],
        |r| {
            linked.insert(r.int(0)?);
            Ok(())
        },
    )?;
    let unmapped = |what: &str, id: i64, request: i64| {
        StoreError::SourceChanged(format!(
            "run {run_id}: source request {request} now refers to {what} {id}, which was not on the source when the \
             run was planned (the source changed during the run); nothing of this chunk was written. Roll the run \
             back (`ferry copy rollback {run_id}`) and run the copy again"
        ))
    };
    let mut copied: FxHashMap<i64, i64> = FxHashMap::default();
    let mut requests = RowBatch::new(&REQUESTS);
    let mut links = RowBatch::new(&REQUEST_LINKS);
    let mut copied_from = String::new();
    for r in &source.requests {
        let Some((project, key)) = maps.projects.get(&r.project) else { continue };
        if linked.contains(&r.id) {
            continue;
        }
        let reporter = maps.accounts.get(r.reporter).ok_or_else(|| unmapped("account", r.reporter, r.id))?;
        let organization = r.organization.and_then(|o| maps.organizations.get(&o).copied());
        let next_id = request_ids.next_id();
        copied.insert(r.id, next_id);
        copied_from.clear();
        {
            use std::fmt::Write as _;
            let _ = write!(copied_from, "{}/{key}-{}", row.source.slug, r.number);
        }
        requests.push(&[
            Val::I(next_id),
            Val::I(d),
            Val::I(*project),
            Val::I(r.number),
            Val::T(source.text(r.summary)),
            Val::T(source.text(r.status)),
            Val::T(source.text(r.created)),
            Val::I(reporter),
            Val::from(organization),
            Val::T(&copied_from),
        ]);
        links.push(&[Val::I(s), Val::I(d), Val::T("request"), Val::I(r.id), Val::I(next_id), Val::I(run_id)]);
    }
    write_batch(tx, &requests)?;
    write_batch(tx, &links)?;
    if copied.is_empty() {
        return Ok(0);
    }

    let mut participants: Vec<(i64, i64)> = Vec::new();
    for &(request, account) in &source.participants {
        if let Some(&destination) = copied.get(&request) {
            let to = maps.accounts.get(account).ok_or_else(|| unmapped("account", account, request))?;
            participants.push((destination, to));
        }
    }
    // Two source accounts may have become one destination account.
    participants.sort_unstable();
    participants.dedup();
    let mut batch = RowBatch::new(&PARTICIPANTS);
    for (request, account) in participants {
        batch.push(&[Val::I(request), Val::I(account)]);
    }
    write_batch(tx, &batch)?;

    let mut comments = RowBatch::new(&COMMENTS);
    for c in &source.comments {
        if let Some(&destination) = copied.get(&c.request) {
            let to = maps.accounts.get(c.author).ok_or_else(|| unmapped("account", c.author, c.request))?;
            comments.push(&[
                Val::I(destination),
                Val::I(to),
                Val::T(source.text(c.created)),
                Val::T(source.text(c.body)),
            ]);
        }
    }
    write_batch(tx, &comments)?;
    Ok(copied.len())
}
