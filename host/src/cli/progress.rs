//! What the CLI shows while a component compiles: a large one (CPython or a JavaScript engine
//! inside) takes seconds the first time, and a user must not wonder why a call hangs. On a
//! terminal a line counts the seconds; otherwise one line when compiling begins and one when it
//! ends, so CI logs say where the time went.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use omni_cpi::wasm::CompileProgress;

pub struct StderrProgress;

impl CompileProgress for StderrProgress {
    fn begin(&self, component: &str, bytes: usize) -> Box<dyn Send> {
        let what = format!("{component} ({:.1} MB)", bytes as f64 / 1e6);
        let started = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        let ticker = if terminal {
            let done = done.clone();
            let what = what.clone();
            std::thread::Builder::new()
                .name("omni-cpi-progress".into())
                .spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        eprint!(
                            "\r\x1b[2Kcompiling {what} for this machine, once: {:.0} s",
                            started.elapsed().as_secs_f64()
                        );
                        let _ = std::io::stderr().flush();
                        std::thread::sleep(Duration::from_millis(250));
                    }
                })
                .ok()
        } else {
            eprintln!("omni-cpi: compiling {what} for this machine, once (`omni-cpi compile` does this ahead of time)");
            None
        };
        Box::new(Finished { what, started, done, ticker, terminal })
    }
}

struct Finished {
    what: String,
    started: Instant,
    done: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
    terminal: bool,
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
        let clear = if self.terminal { "\r\x1b[2K" } else { "" };
        eprintln!("{clear}omni-cpi: compiled {} in {:.1} s", self.what, self.started.elapsed().as_secs_f64());
    }
}
