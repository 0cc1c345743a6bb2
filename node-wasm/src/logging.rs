//! `tracing` in the browser: events at INFO and above (DEBUG with `?past-debug` in the
//! page's URL) go to the console, formatted by `tracing-subscriber` without timestamps
//! (the console has its own; `std::time` has no clock on wasm32-unknown-unknown).

use std::io;

use tracing_subscriber::fmt::MakeWriter;

/// A line buffer written to `console.log` when dropped.
pub(crate) struct Console(Vec<u8>);

impl io::Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim_end();
        if !text.is_empty() {
            web_sys::console::log_1(&text.into());
        }
    }
}

struct MakeConsole;

impl<'a> MakeWriter<'a> for MakeConsole {
    type Writer = Console;
    fn make_writer(&'a self) -> Console {
        Console(Vec::with_capacity(128))
    }
}

/// Installs the console subscriber once (later calls do nothing).
pub(crate) fn init() {
    let debug =
        web_sys::window().and_then(|w| w.location().search().ok()).is_some_and(|search| search.contains("past-debug"));
    let level = if debug { tracing::Level::DEBUG } else { tracing::Level::INFO };
    let _ = tracing_subscriber::fmt()
        .with_writer(MakeConsole)
        .with_max_level(level)
        .without_time()
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
