//! What the CLI prints: progress (a bar on a terminal, plain lines on stderr otherwise, JSON
//! lines with `--json`) and outcomes (stdout).

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};
use past_node::control::Reply;
use past_node::{Progress, Stage};

/// Prints one JSON object on a line of stdout.
pub(crate) fn print_json(reply: &Reply) {
    match serde_json::to_string(reply) {
        Ok(line) => println!("{line}"),
        Err(err) => eprintln!("error: cannot encode the answer: {err}"),
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Hashing => "hashing",
        Stage::Storing => "storing",
        Stage::Receiving => "receiving",
    }
}

/// Progress and outcome of one command.
pub(crate) struct Output {
    json: bool,
    terminal: bool,
    bar: Option<(Stage, ProgressBar)>,
    /// Plain lines: the stage and tenth last printed.
    printed: Option<(Stage, u64)>,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Output { json, terminal: std::io::stdout().is_terminal(), bar: None, printed: None }
    }

    /// Shows progress.
    pub(crate) fn progress(&mut self, progress: &Progress) {
        if self.json {
            return print_json(&Reply::Progress(*progress));
        }
        if self.terminal {
            return self.bar(progress);
        }
        let tenth = (progress.bytes * 10).checked_div(progress.total).unwrap_or(10);
        if self.printed != Some((progress.stage, tenth)) {
            self.printed = Some((progress.stage, tenth));
            eprintln!("{} {} of {} bytes", stage_name(progress.stage), progress.bytes, progress.total);
        }
    }

    fn bar(&mut self, progress: &Progress) {
        if self.bar.as_ref().is_none_or(|(stage, _)| *stage != progress.stage) {
            self.done();
            let bar = ProgressBar::new(progress.total);
            let style = ProgressStyle::with_template("{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(stage_name(progress.stage));
            self.bar = Some((progress.stage, bar));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_length(progress.total);
            bar.set_position(progress.bytes);
        }
    }

    /// Ends the progress display.
    pub(crate) fn done(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish();
        }
    }

    /// Prints the outcome: `reply` as JSON, or `text` for people.
    pub(crate) fn result(&mut self, reply: &Reply, text: impl FnOnce() -> String) {
        self.done();
        if self.json {
            print_json(reply);
        } else {
            println!("{}", text());
        }
    }
}
