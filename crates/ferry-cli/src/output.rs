//! Standard output that survives a closed pipe, and progress on stderr.

#[allow(unused_imports)]
use crate::*;

/// Standard output that a reader may close early (`ferry copy run … |
/// head -1`): once the pipe is gone, output is dropped, and the work goes
/// on and ends as it would have; a closed stdout never fails or stops a
/// command.
pub(crate) struct Output<W: Write> {
    pub(crate) inner: W,
    pub(crate) closed: bool,
}

impl<W: Write> Output<W> {
    pub(crate) fn new(inner: W) -> Output<W> {
        Output { inner, closed: false }
    }

    /// `io` on the inner writer, unless the reader has gone; a broken pipe
    /// marks it gone and counts as `done`.
    fn unless_closed<T>(&mut self, done: T, io: impl FnOnce(&mut W) -> std::io::Result<T>) -> std::io::Result<T> {
        if self.closed {
            return Ok(done);
        }
        match io(&mut self.inner) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.unless_closed(buf.len(), |w| w.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.unless_closed((), Write::flush)
    }
}

/// A line of progress on stderr, which may be closed: then it is dropped.
pub(crate) fn note(line: &str) {
    let mut err = Output::new(std::io::stderr());
    let _ = writeln!(err, "{line}");
}

pub(crate) struct UpgradeProgress(pub(crate) TerminalProgress);

impl ferry_remedy::Progress for UpgradeProgress {
    fn step(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.0.bar {
            bar.set_message(format!("upgraded {done} of {total} accounts"));
        }
    }
}

/// A bar on a terminal; a plain line per phase otherwise.
pub(crate) struct CopyProgress {
    pub(crate) bar: Option<indicatif::ProgressBar>,
    pub(crate) phase: String,
}

impl CopyProgress {
    pub(crate) fn new() -> CopyProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg:28} [{bar:40}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        CopyProgress { bar, phase: String::new() }
    }

    pub(crate) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ferry_copy::Progress for CopyProgress {
    fn step(&mut self, phase: &str, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(phase.to_owned());
                bar.set_length(total.max(done));
                bar.set_position(done);
            }
            None => {
                if self.phase != phase {
                    note(&format!("copy: {phase}"));
                    self.phase = phase.to_owned();
                }
            }
        }
    }
}

/// A spinner on a terminal; plain lines on stderr otherwise (logs, CI).
pub(crate) struct TerminalProgress {
    pub(crate) bar: Option<indicatif::ProgressBar>,
    pub(crate) label: &'static str,
    pub(crate) since: std::time::Instant,
}

impl TerminalProgress {
    pub(crate) fn new(label: &'static str) -> TerminalProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        TerminalProgress { bar, label, since: std::time::Instant::now() }
    }

    pub(crate) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress {
    fn rows(&mut self, file: &str, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} {file}: {rows} rows", self.label));
        }
    }

    fn file_done(&mut self, file: &str, rows: u64) {
        let line = format!("{} {file}: {rows} rows in {:.2} s", self.label, self.since.elapsed().as_secs_f64());
        self.since = std::time::Instant::now();
        match &self.bar {
            Some(bar) => bar.println(line),
            None => note(&line),
        }
    }
}
