//! Progress: a bar per file when stderr is a terminal, plain lines when it
//! is not (logs, CI), nothing with `--quiet`. Errors are reported in every
//! mode, one line each, naming the file.

use std::cell::{Cell, OnceCell};
use std::io::IsTerminal;
use std::path::Path;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::converted::Converted;
use crate::error::ClientError;

/// Bar layout: file, bar, bytes sent of total, send rate, status.
const BAR_TEMPLATE: &str =
    "{prefix:.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}";

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars on a terminal.
    Bars,
    /// One line per event.
    Lines,
    /// Errors only.
    Quiet,
}

/// Reports on the whole run.
#[derive(Debug)]
pub struct Reporter {
    mode: Mode,
    bars: MultiProgress,
}

impl Reporter {
    /// Bars if stderr is a terminal, lines if not, nothing but errors if `quiet`.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        Self::with_mode(mode)
    }

    /// A reporter in a given mode.
    pub fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            bars: MultiProgress::new(),
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Progress for one file, named as the user gave it.
    pub fn file(&self, input: &Path) -> FileProgress<'_> {
        FileProgress {
            reporter: self,
            name: input.display().to_string(),
            bar: OnceCell::new(),
            total: Cell::new(0),
            sent: Cell::new(0),
            received: Cell::new(0),
            quarter: Cell::new(0),
        }
    }

    /// A new bar of `total` bytes for `name`.
    fn bar(&self, name: &str, total: u64) -> ProgressBar {
        let style = ProgressStyle::with_template(BAR_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = self.bars.add(ProgressBar::new(total));
        bar.set_style(style);
        bar.set_prefix(name.to_string());
        bar.set_message("connecting");
        bar
    }

    /// Reports an error; `file` names the input it concerns, if any.
    pub fn error(&self, file: Option<&str>, error: &ClientError) {
        let line = match file {
            Some(file) => format!("flacstream-client: {file}: {error}"),
            None => format!("flacstream-client: {error}"),
        };
        self.line(&line);
    }

    /// Closing line when several files were converted.
    pub fn summary(&self, files: usize, failed: usize) {
        if self.mode != Mode::Quiet && files > 1 {
            // Every bar is finished by now, the cursor at the end of the
            // last one: print below them.
            let newline = if self.mode == Mode::Bars { "\n" } else { "" };
            eprintln!(
                "{newline}{} of {files} files converted, {failed} failed",
                files - failed
            );
        }
    }

    fn line(&self, line: &str) {
        match self.mode {
            Mode::Bars => self.bars.suspend(|| eprintln!("{line}")),
            Mode::Lines | Mode::Quiet => eprintln!("{line}"),
        }
    }
}

/// Progress of one file. Used from one task, hence `Cell`s.
#[derive(Debug)]
pub struct FileProgress<'a> {
    reporter: &'a Reporter,
    name: String,
    /// Made once the input is read and its size known (bars mode only).
    bar: OnceCell<ProgressBar>,
    total: Cell<u64>,
    sent: Cell<u64>,
    received: Cell<u64>,
    /// Quarters of the input already announced in line mode.
    quarter: Cell<u64>,
}

impl FileProgress<'_> {
    /// The input is read: `total` bytes to send.
    pub fn start(&self, total: u64) {
        self.total.set(total);
        if self.reporter.mode == Mode::Bars {
            let _ = self.bar.set(self.reporter.bar(&self.name, total));
        } else if self.reporter.mode == Mode::Lines {
            eprintln!("{}: streaming {total} bytes", self.name);
        }
    }

    /// Opening the stream failed in a way worth retrying; the next attempt
    /// comes after `wait`.
    pub fn retrying(&self, error: &ClientError, wait: std::time::Duration) {
        if self.reporter.mode == Mode::Quiet {
            return;
        }
        let line = format!(
            "{}: {error}; retrying in {:.1} s",
            self.name,
            wait.as_secs_f64()
        );
        if let Some(bar) = self.bar.get() {
            bar.set_message(format!("retrying in {:.1} s", wait.as_secs_f64()));
        }
        self.reporter.line(&line);
    }

    /// `n` more WAV bytes went out.
    pub fn sent(&self, n: u64) {
        let sent = self.sent.get() + n;
        self.sent.set(sent);
        if let Some(bar) = self.bar.get() {
            if sent == n {
                bar.set_message("streaming");
            }
            bar.set_position(sent);
        } else if self.reporter.mode == Mode::Lines {
            let total = self.total.get().max(1);
            let quarter = sent * 4 / total;
            if quarter > self.quarter.get() && quarter < 4 {
                self.quarter.set(quarter);
                eprintln!("{}: {}% sent", self.name, quarter * 25);
            }
        }
    }

    /// `n` more FLAC bytes came back.
    pub fn received(&self, n: u64) {
        let received = self.received.get() + n;
        self.received.set(received);
        if let Some(bar) = self.bar.get() {
            bar.set_message(format!("{} FLAC received", indicatif::HumanBytes(received)));
        }
    }

    /// The stream is complete; the output is being checked.
    pub fn verifying(&self) {
        if let Some(bar) = self.bar.get() {
            bar.set_message("verifying");
        } else if self.reporter.mode == Mode::Lines {
            eprintln!("{}: verifying", self.name);
        }
    }

    /// The file is converted and verified.
    pub fn finish(&self, done: &Converted) {
        let ratio = 100.0 * done.bytes_out as f64 / done.bytes_in.max(1) as f64;
        let output = done.output.display();
        if let Some(bar) = self.bar.get() {
            // Short, so the bar still fits on one line.
            bar.finish_with_message(format!("ok -> {output} ({ratio:.1}%)"));
        } else if self.reporter.mode == Mode::Lines {
            eprintln!(
                "{}: ok -> {output} ({} samples, {} -> {} bytes, {ratio:.1}%, verified)",
                self.name, done.samples, done.bytes_in, done.bytes_out
            );
        }
    }

    /// The file failed; reported in every mode.
    pub fn fail(&self, error: &ClientError) {
        if let Some(bar) = self.bar.get() {
            bar.abandon_with_message("failed");
        }
        self.reporter.error(Some(&self.name), error);
    }
}
